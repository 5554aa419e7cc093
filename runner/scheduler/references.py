"""A request's reference images, read from disk and base64-encoded once per run,
checked against the content hash they were planned with.

Owns `ReferenceChanged`: a reference that can no longer be read, or whose bytes
changed since planning, fails its item before anything is sent. Must not send,
record or plan anything.
"""

from __future__ import annotations

import hashlib
import threading
from typing import TYPE_CHECKING

from runner.client import InlineImage

if TYPE_CHECKING:
    from runner.spec import Reference


class ReferenceChanged(Exception):
    """A reference image differs from (or is missing since) the planned one."""


class References:
    """The reference images of a run, encoded for the request body and cached by
    content hash: a 14-image set is read and encoded once, not for every item
    that names it, nor for every attempt."""

    def __init__(self) -> None:
        self._data: dict[str, InlineImage] = {}
        # Worker threads that miss the cache at once read and encode one by one:
        # the second finds what the first loaded.
        self._lock = threading.Lock()

    def cached(self, refs: tuple[Reference, ...]) -> list[InlineImage] | None:
        """Each reference, in order, if all are loaded already (no I/O: for the
        event loop), else None."""
        found = [self._data.get(ref.sha256) for ref in refs]
        return None if None in found else [f for f in found if f is not None]

    def load(self, refs: tuple[Reference, ...]) -> list[InlineImage]:
        """Each reference, in order, read and encoded if it is not cached yet (a
        worker thread); raises ReferenceChanged."""
        with self._lock:
            return self._load(refs)

    def _load(self, refs: tuple[Reference, ...]) -> list[InlineImage]:
        loaded = []
        for ref in refs:
            data = self._data.get(ref.sha256)
            if data is None:
                try:
                    raw = ref.abs_path.read_bytes()
                except OSError as exc:
                    raise ReferenceChanged(
                        f"reference image {ref.path} can no longer be read "
                        f"({exc.strerror}); restore it, or edit the job file and "
                        "submit again"
                    ) from exc
                if hashlib.sha256(raw).hexdigest() != ref.sha256:
                    raise ReferenceChanged(
                        f"reference image {ref.path} changed since the job was "
                        "planned; submit the job file again to plan the new version"
                    )
                data = self._data[ref.sha256] = InlineImage.of(raw)
            loaded.append(data)
        return loaded
