"""The review during a run: thumbnails as images land, contact sheets as prompts
finish, and at the end of the run the page refreshed from what changed.

Owns `LiveReview`. The run hands it the attempt ends each store write recorded
(`written`, called in the recorder's store thread: it only queues them, bounded,
and never blocks). A worker thread, and `workers.WORKERS` threads making the
thumbnails for it (Pillow releases the GIL while it decodes, shrinks and encodes),
all scheduled only when a CPU would otherwise be idle (Linux's SCHED_IDLE), so
they take only the CPU the run leaves:

    loads, once the run's first answer is recorded, the job's entries, grids
    and sheets from the store, as `build_review` would (thumbnails and sheets
    already up to date are kept, missing ones made); has the thumbnail of each
    image made as it lands, the first landed first; reads the rows of the items
    that changed (at most every REFRESH_EVERY seconds, those items only); draws
    a sheet once all its cells are done (succeeded with a thumbnail, failed or
    blocked), if its signature says it changed.

`finish`, after the run, stops the worker, reads the last changed rows, makes what
the worker had not reached on every core (`workers`), writes gallery-data.js and
index.html from the model it kept (nothing else is read again), then draws the
sheets still to draw. A worker that failed, a queue that overflowed, or a run the
worker never saw start (a Batch API run) make `finish` a full `build_review`
instead: the result is the same, only slower. Every file is written whole by
rename, so a run killed at any moment leaves each thumbnail and sheet complete or
absent, and the next run or review makes what is missing. Must not write to the
store, or anything but what `build_review` writes.
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from runner.review import build, workers
from runner.review.sheets import CONTACT_DIR, draw_page, draw_sheets, plan_group
from runner.review.thumbnails import (
    REF_THUMBS_DIR,
    THUMBS_DIR,
    Thumbnailer,
    make_reference_thumbnails,
    make_thumbnails,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from runner.review.build import Model, Review
    from runner.review.grid import Entry
    from runner.review.sheets import Page
    from runner.store import AttemptEnd, JobRow, Store

# Seconds between reads of the changed items' rows while the run goes on.
REFRESH_EVERY = 0.5
# Attempt ends waiting for the worker at most; past it they are dropped and the
# end of the run reads every row again (never reached unless the worker stalls).
EVENTS_MAX = 65_536
# Images waiting for their thumbnail at most; past it they wait for the end.
THUMBS_WAITING_MAX = 4_096
# Where a killed build may have left temp files (the next run removes them).
FOLDERS = (THUMBS_DIR, REF_THUMBS_DIR, CONTACT_DIR)
# The review threads' nice value where SCHED_IDLE is not to be had (Linux): the
# run's event loop, its writers and whatever else the machine runs come first.
WORKER_NICE = 19
_TERMINAL = frozenset({"succeeded", "failed", "blocked"})


class LiveReview:
    """The gallery of one run's job, kept up to date while the run goes on."""

    def __init__(self) -> None:
        self._events: collections.deque[tuple[int, str | None]] = collections.deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._overflowed = False
        self._failed: BaseException | None = None
        self._store: Store | None = None
        self._job: JobRow | None = None
        self._folder: Path | None = None
        self._state: _State | None = None

    def start(self, store: Store, job: JobRow, job_folder: Path) -> None:
        """Start the worker for this job (once): it loads the job, then follows
        what `written` hands it."""
        if self._thread is not None:
            return
        self._store, self._job, self._folder = store, job, job_folder
        self._thread = threading.Thread(
            target=self._work, name="review-live", daemon=True
        )
        self._thread.start()

    def written(self, ends: list[AttemptEnd]) -> None:
        """The run's hook: attempt ends the store has just recorded (queued here,
        never blocking; the recorder's store thread calls it)."""
        try:
            if len(self._events) + len(ends) > EVENTS_MAX:
                self._overflowed = True
                return
            self._events.extend(
                (
                    end.item_id,
                    end.result.outputs[0]
                    if end.result.item_status == "succeeded" and end.result.outputs
                    else None,
                )
                for end in ends
            )
            self._wake.set()
        except Exception:  # never the run's problem
            self._overflowed = True

    def close(self) -> None:
        """Stop the worker and wait for it (it stops after its current file)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def finish(self, store: Store, job: JobRow, job_folder: Path) -> Review:
        """Stop the worker, then bring the gallery up to date with the run's end:
        what the worker had not reached is made on every core. Without a worker
        that followed the whole run of this job, a full `build_review`."""
        self.close()
        state = self._state
        if (
            state is None
            or self._failed is not None
            or self._overflowed
            or state.store is not store
            or state.job.id != job.id
            or state.folder != job_folder
        ):
            return build.build_review(store, job, job_folder)
        state.job = job  # as the run left it, for the page's header
        return state.finish(self._take())

    # -- the worker -------------------------------------------------------------

    def _take(self) -> set[int]:
        changed: set[int] = set()
        while self._events:
            item_id, image = self._events.popleft()
            changed.add(item_id)
            if image is not None and self._state is not None:
                self._state.landed(image)
        return changed

    def _work(self) -> None:
        _lower_priority()
        assert self._store and self._job and self._folder
        state = None
        try:
            # Not before the run's first answer: a large job's load (seconds at
            # 100,000 items) must not hold the GIL while the first requests go out.
            self._wake.wait()
            if self._stop.is_set():
                return
            state = _State(self._store, self._job, self._folder, self._wake.set)
            self._state = state
            while not self._stop.is_set():
                self._wake.clear()
                state.changed |= self._take()
                if state.step(self._stop):
                    continue
                self._wake.wait(REFRESH_EVERY if state.changed else None)
        except BaseException as exc:  # finish() builds the whole review instead
            self._failed = exc
        finally:
            if state is not None:
                state.stop()


class _State:
    """The worker's model of the job and what is left to do (only one thread
    uses it at a time: the worker, then `finish` once the worker has stopped)."""

    def __init__(
        self, store: Store, job: JobRow, job_folder: Path, wake: Callable[[], None]
    ) -> None:
        self.store, self.job, self.folder = store, job, job_folder
        self.model: Model = build.load_model(store, job)
        self.maker = Thumbnailer(job_folder)
        # Thumbnails are made on WORKERS threads at the worker's priority (Pillow
        # releases the GIL while it decodes, shrinks and encodes), while this
        # thread reads rows and draws sheets.
        self.pool = ThreadPoolExecutor(
            workers.WORKERS, "review-live", initializer=_lower_priority
        )
        self.running: dict[Future[tuple[str, int] | str], str] = {}
        self.submitted: set[str] = set()  # images whose thumbnail this run made
        self.wake = wake
        self.made_live = 0
        self.drawn_live = 0
        # image -> the entry waiting for its thumbnail
        self.waiting: dict[str, Entry] = {}
        self.soon: dict[str, None] = {}  # images landed, oldest first
        # Thumbnails made before the row naming their image was read.
        self.early: dict[str, tuple[str, int] | str] = {}
        self.later: dict[str, None] = {}  # images of earlier runs, or left over
        self.changed: set[int] = set()  # items whose rows are to be read again
        self.refreshed = time.monotonic()
        # Sheets to draw once all their cells are done (succeeded with a
        # thumbnail, failed or blocked): how many are not, kept as entries change.
        self.ready: dict[str, None] = {}  # dirty sheets none of whose cells is not
        self.undone: dict[str, int] = {}
        self.done: dict[int, bool] = {}  # id(entry) -> whether its cell is done
        make_reference_thumbnails(job_folder, self.model.legend)
        for entry, _, _ in self.maker.missing(self.model.entries):
            assert entry.image is not None
            self.waiting[entry.image] = entry
            self.later[entry.image] = None
        # Every sheet as it stands: kept if its signature matches, else drawn
        # once its cells are done. Stale sheets of earlier builds go.
        self.pages = build.plan_all(job_folder, self.model)
        self.dirty = {
            key
            for key, pages in self.pages.items()
            if any(p.sheet.written for p in pages)
        }
        for key, group in self.model.groups.items():
            entries = [e for grid in group.grids for e in grid.entries]
            self.done.update((id(e), _done(e)) for e in entries)
            self.undone[key] = sum(1 for e in entries if not self.done[id(e)])
            if key in self.dirty and not self.undone[key]:
                self.ready[key] = None

    def landed(self, image: str) -> None:
        if len(self.soon) < THUMBS_WAITING_MAX:
            self.soon[image] = None
        else:
            self.later[image] = None

    def step(self, stop: threading.Event) -> bool:
        """Keep the thumbnail threads busy (the images that landed first), then do
        one thing here, the most useful first; False when there is nothing to do
        but wait."""
        fed = self._collect() | self._feed()
        if self.changed and time.monotonic() - self.refreshed >= REFRESH_EVERY:
            self._refresh()
        elif self.ready:
            key = _pop_first(self.ready)
            if self.undone[key]:  # a cell changed again since
                return True
            for page in self._plan(key):
                if stop.is_set():
                    self.dirty.add(key)
                    break
                if page.sheet.written:
                    draw_page(page)
                    self.drawn_live += 1
        else:
            return fed
        return True

    def _feed(self) -> bool:
        """As many thumbnails in the making as there are threads."""
        fed = False
        while len(self.running) < workers.WORKERS and (self.soon or self.later):
            image = _pop_first(self.soon or self.later)
            if image in self.submitted:
                continue  # made already, or on its way
            self.submitted.add(image)
            future = self.pool.submit(self.maker.make, image)
            self.running[future] = image
            future.add_done_callback(lambda _: self.wake())
            fed = True
        return fed

    def _collect(self) -> bool:
        """Apply the thumbnails made since last time."""
        done = [f for f in self.running if f.done()]
        for future in done:
            image = self.running.pop(future)
            if future.cancelled():
                continue  # left for the end of the run
            result = future.result()
            self.made_live += not isinstance(result, str)
            entry = self.waiting.pop(image, None)
            if entry is None:  # landed before its row was read: kept for then
                self.early[image] = result
            else:
                self._apply(entry, result)
        return bool(done)

    def stop(self) -> None:
        """No more thumbnails: those being made are finished and kept, the rest
        left for the end of the run."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        self._collect()

    def _apply(self, entry: Entry, result: tuple[str, int] | str) -> None:
        if isinstance(result, str):
            entry.note = result
        else:
            entry.thumb, entry.thumb_mtime, entry.note = result[0], result[1], None
        self._changed(entry)

    def _changed(self, entry: Entry) -> None:
        """Its sheet is to be drawn again, once none of its cells is undone."""
        key = self.model.sheet_of[str(entry.row["prompt_id"])]
        self.dirty.add(key)
        done = _done(entry)
        if done != self.done[id(entry)]:
            self.done[id(entry)] = done
            self.undone[key] += -1 if done else 1
        if not self.undone[key]:
            self.ready[key] = None

    def _refresh(self) -> None:
        """Read the changed items' rows; an entry with a new image waits for its
        thumbnail (made already, or on its way, or left for later)."""
        changed, self.changed = self.changed, set()
        self.refreshed = time.monotonic()
        for entry in build.refresh(self.store, self.job, self.model, changed):
            image = entry.image
            if image is None or entry.thumb is not None or entry.note is not None:
                self._changed(entry)
                continue
            early = self.early.pop(image, None)
            if early is not None:
                self._apply(entry, early)
                continue
            self._changed(entry)  # undone until its thumbnail is made
            self.waiting[image] = entry
            if image not in self.soon and image not in self.submitted:
                self.later[image] = None

    def _plan(self, key: str) -> list[Page]:
        self.dirty.discard(key)
        pages = plan_group(
            self.folder, self.model.groups[key], self.model.legend, self.model.taken
        )
        self.pages[key] = pages
        return pages

    def finish(self, changed: set[int]) -> Review:
        """The run's end: the last rows, what is left to make, the page, the
        sheets still to draw."""
        clock = build.Laps()
        self.changed |= changed
        if self.changed:
            self._refresh()
        clock.lap("refresh")
        left = [e for e in self.waiting.values() if e.thumb is None]
        made = make_thumbnails(self.folder, left)
        clock.lap("thumbnails")
        for entry in left:
            self.dirty.add(self.model.sheet_of[str(entry.row["prompt_id"])])
        redraw = [p for key in list(self.dirty) for p in self._plan(key)]
        sheets = [p.sheet for pages in self.pages.values() for p in pages]
        written = build.write_gallery(
            self.store, self.job, self.folder, self.model, sheets
        )
        clock.lap("index")
        draw_sheets(redraw)
        clock.lap("contact_sheets")
        return build.Review(
            index=written.index,
            data=written.data,
            contact_sheets=tuple(s.path for s in sheets),
            thumbnails=sum(1 for e in self.model.entries if e.thumb is not None),
            thumbnails_made=self.made_live + made,
            sheets=tuple(sheets),
            index_written=written.written,
            seconds=clock.seconds,
            during_run={"thumbnails": self.made_live, "sheet_pages": self.drawn_live},
        )


def _done(entry: Entry) -> bool:
    """Whether an entry's cell is final: failed, blocked, or succeeded with its
    thumbnail made (or a note saying why there is none)."""
    return entry.status in _TERMINAL and (
        entry.image is None or entry.thumb is not None or entry.note is not None
    )


def _pop_first(ordered: dict[str, None]) -> str:
    first = next(iter(ordered))
    del ordered[first]
    return first


def _lower_priority() -> None:
    """This thread scheduled only when a CPU would otherwise be idle (Linux's
    SCHED_IDLE, per thread), or failing that at the lowest nice value; elsewhere
    as it is, since there a nice value would lower the whole process."""
    if not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
    except (OSError, AttributeError):
        try:
            os.setpriority(os.PRIO_PROCESS, tid, WORKER_NICE)
        except OSError:
            pass
