"""`runner review JOB --serve`: the gallery on loopback with marking controls.

Owns: the served job's mark book (which image a request names, a change written
through `marking.set_marks` as `runner mark` writes it, how an image was made as
an export's sidecar says), which folders may be served (the job's, those of the
jobs its items derive from and those of the jobs derived from its images), the
gallery built before serving and rebuilt after when marks changed, and serving
until Ctrl-C. Must not print, read input or exit.
"""

from __future__ import annotations

import errno
import signal
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from runner.errors import UsageError
from runner.reports import ServeReport, Serving
from runner.runs.export import sidecar
from runner.runs.marking import set_marks
from runner.runs.workspace import find_job

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from pathlib import Path

    from runner.review.serve import GalleryServer
    from runner.runs.workspace import Workspace
    from runner.store import JobRow, Keep, Store

# The review package (Pillow and all) is imported by the functions that serve:
# importing the runs layer must stay fast for `runner status`.


def serve(
    job: str,
    *,
    workspace: Workspace,
    port: int = 0,
    ready: Callable[[Serving], None] | None = None,
) -> ServeReport:
    """Serve the job's gallery until Ctrl-C; `ready` hears where, once it answers.
    Stopping is the normal end: every change is already in the store."""
    with served_gallery(job, workspace=workspace, port=port) as (server, book):
        try:
            with _terminate_as_interrupt():
                if ready is not None:
                    where = tuple(server.folders.values())
                    ready(Serving(server.job, server.url, where))
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return ServeReport(server.job, book.changes, book.rebuilt)


@contextmanager
def served_gallery(
    job: str, *, workspace: Workspace, port: int = 0
) -> Iterator[tuple[GalleryServer, ServedMarks]]:
    """The job's gallery built and served from a thread until the block ends, then
    rebuilt if marks changed (the static page shows them)."""
    from runner.review import build_review
    from runner.review.serve import GalleryServer

    workspace.check_output()
    store = workspace.open_store()
    try:
        row = find_job(store, job)
        folder = workspace.job_folder(row.name)
        build_review(store, row, folder)
        book = ServedMarks(store, row, folder)
        folders = {row.name: folder, **_related_folders(store, row, workspace)}
        try:
            server = GalleryServer(book, folders, port=port)
        except OSError as exc:
            raise _port_error(port, exc) from None
        with server:
            yield server, book
        if book.changes:
            book.rebuilt = build_review(store, row, folder).index
    finally:
        store.close()


class ServedMarks:
    """The served job's marks, as `runner.review.serve.MarkBook` reads and changes
    them; counts the changes."""

    def __init__(self, store: Store, row: JobRow, folder: Path) -> None:
        self._store, self._row, self._folder = store, row, folder
        self._lock = threading.Lock()
        self._items: dict[str, int] = {}  # image -> its item's id
        self.changes = 0
        self.rebuilt: Path | None = None

    @property
    def job(self) -> str:
        return self._row.name

    def marks(self) -> dict[str, dict[str, Any]]:
        return {m.image: m.as_dict() for m in self._store.marks(self._row)}

    def change(
        self, image: str, mark: str | None | Keep, note: str | None | Keep
    ) -> dict[str, Any]:
        with self._lock:  # one change at a time, each with its manifest
            item = self._item_of(image)
            marks, _ = set_marks(
                self._store, self._row, self._folder, [(item, image)], mark, note
            )
            self.changes += 1
        return {"image": image, **marks[0].as_dict()}

    def describe(self, images: Sequence[str]) -> dict[str, dict[str, Any]]:
        wanted = set(images)
        rows = [
            (row, image)
            for row in self._store.manifest_rows(self._row)
            for image in row["outputs"]
            if image in wanted
        ]
        requests = self._store.item_requests(self._row, [r["key"] for r, _ in rows])
        return {
            image: {
                **sidecar(self.job, row, image, requests.get(row["key"], {})),
                "status": row["status"],
            }
            for row, image in rows
        }

    def _item_of(self, image: str) -> int:
        """The id of the item `image` (as the manifest names it) belongs to;
        KeyError if none has it (after reading the store again: a run may have
        added it since)."""
        if image not in self._items:
            self._items = {
                output: found.item_id
                for found in self._store.images_of(self._row)
                for output in found.outputs
            }
        return self._items[image]


def _related_folders(
    store: Store, row: JobRow, workspace: Workspace
) -> dict[str, Path]:
    """The folders of the jobs the store knows that this job's items derive from,
    and of those deriving from its images: the gallery links a child to its parent
    and a parent to its children (SPEC 6)."""
    names = {
        str(item["parent"]["job"])
        for item in store.manifest_rows(row)
        if item.get("parent")
    }
    names |= {child.job for child in store.children_of(row)}
    return {
        name: workspace.job_folder(name)
        for name in sorted(names - {row.name})
        if store.get_job(name) is not None
    }


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a service manager, `kill`) stops the server as Ctrl-C does, so the
    page is still rebuilt; the handler it replaces comes back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _port_error(port: int, exc: OSError) -> UsageError:
    from runner.review.serve import HOST

    if exc.errno == errno.EADDRINUSE:
        why = "is in use"
    else:
        why = f"cannot be opened ({exc.strerror or exc})"
    return UsageError(
        f"port {port} on {HOST} {why}; choose another --port, or --port 0 for "
        "any free one"
    )
