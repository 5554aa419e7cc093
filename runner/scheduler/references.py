"""A request's reference images, read from disk once per run and checked against
the content hash they were planned with.

Owns `ReferenceChanged`: a reference that can no longer be read, or whose bytes
changed since planning, fails its item before anything is sent. Must not send,
record or plan anything.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.spec import Reference


class ReferenceChanged(Exception):
    """A reference image differs from (or is missing since) the planned one."""


class References:
    """The reference images of a run, cached by content hash (worker threads)."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}

    def load(self, refs: tuple[Reference, ...]) -> list[bytes]:
        """The bytes of each reference, in order; raises ReferenceChanged."""
        loaded = []
        for ref in refs:
            data = self._data.get(ref.sha256)
            if data is None:
                try:
                    data = ref.abs_path.read_bytes()
                except OSError as exc:
                    raise ReferenceChanged(
                        f"reference image {ref.path} can no longer be read "
                        f"({exc.strerror}); restore it, or edit the job file and "
                        "submit again"
                    ) from exc
                if hashlib.sha256(data).hexdigest() != ref.sha256:
                    raise ReferenceChanged(
                        f"reference image {ref.path} changed since the job was "
                        "planned; submit the job file again to plan the new version"
                    )
                self._data[ref.sha256] = data
            loaded.append(data)
        return loaded
