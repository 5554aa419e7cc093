"""A run's one writer: attempts begun and ended, with their images moved into place,
written in batches from two worker threads, one store transaction per batch.

Why: a hop to a worker thread costs about 0.1 ms of CPU and a transaction about
0.2 ms; at 200 requests/s, two of each per item were a third of the runner's CPU,
and dozens of threads queueing for the store fought the event loop for the GIL.
Here tasks hand their changes to the recorder and wait; while one batch is being
written the next gathers, so the busier the run, the larger (and cheaper per item)
the batches. When the run is idle a change is written at once.

Two lanes: an answer's images are written (and synced) in the files lane, then its
attempt goes to the store lane with the requests about to be sent, so a request
never waits behind another answer's disk writes. The files lane also appends each
batch's paid answers to the job's journal (one write, one fsync), so an answer is
kept even if the store write then fails; the next run replays it.

A change handed over is always written, even if its task is cancelled meanwhile:
the answer it records was paid for. `serve` must therefore run in a task group
that outlives every task that calls `begin` or `end` (see run.run_items).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar, cast

import anyio
from anyio import to_thread

from runner.store import AttemptEnd, AttemptRecord, AttemptStart, Store

if TYPE_CHECKING:
    from runner.scheduler.journal import Journal
    from runner.store.attempts import Change

T = TypeVar("T")

# Runs in the files thread: whatever must be on disk first (images into place),
# then the change to record and a value for the task that handed it over.
Prepare = Callable[[], tuple["Change", object]]
# What to record instead when `prepare` raised: the answer was paid for all the same.
Fallback = Callable[[Exception], AttemptEnd]
# Told, in the store thread, of the attempt ends each transaction has written
# (the review makes thumbnails from them); must return at once and never raise.
Written = Callable[[list[AttemptEnd]], None]


@dataclass(slots=True)
class _Ticket:
    prepare: Prepare | None  # None: made with its change (an AttemptStart)
    done: anyio.Event = field(default_factory=anyio.Event)
    change: Change | None = None
    attempt_id: int | None = None
    value: object = None
    error: BaseException | None = None
    key: str = ""  # the item's, for the journal
    fallback: Fallback | None = None
    journaled: bool = False


class _Lane:
    """Tickets waiting for one stage; `work` takes them in batches, in a worker
    thread, and `then` gets each batch afterwards (on the event loop)."""

    def __init__(
        self,
        work: Callable[[list[_Ticket]], None],
        then: Callable[[list[_Ticket]], None],
    ) -> None:
        self._work = work
        self._then = then
        self._pending: list[_Ticket] = []
        self._wake = anyio.Event()
        self._closed = False
        self.batches = 0

    def put(self, tickets: list[_Ticket]) -> None:
        if self._closed:
            raise RuntimeError("the recorder is closed")
        self._pending += tickets
        self._wake.set()

    def close(self) -> None:
        """No more tickets: `serve` returns once those it has are through."""
        self._closed = True
        self._wake.set()

    async def serve(self) -> None:
        try:
            while True:
                if not self._pending:
                    if self._closed:
                        return
                    await self._wake.wait()
                    self._wake = anyio.Event()
                    continue
                batch, self._pending = self._pending, []
                try:
                    with anyio.CancelScope(shield=True):
                        await to_thread.run_sync(self._work, batch)
                except BaseException:
                    _stopped(batch)
                    raise
                self.batches += 1
                self._then(batch)
        finally:
            # Only reached with tickets left if serve itself was cancelled or
            # failed: nobody must wait for a write that will never happen.
            _stopped(self._pending)
            self._pending = []


class Recorder:
    """Two lanes, two threads: files (each ending's `prepare`) then the store. A
    request about to go out waits only for the store lane, never behind another
    answer's image being written and synced."""

    def __init__(
        self,
        store: Store,
        journal: Journal | None = None,
        on_written: Written | None = None,
    ) -> None:
        self._store = store
        self._journal = journal
        self._on_written = on_written
        self._db = _Lane(self._write, _release)
        self._files = _Lane(self._prepare, self._to_db)

    @property
    def batches(self) -> int:
        """Store transactions written (for tests and benchmarks)."""
        return self._db.batches

    async def begin(self, item_id: int, run_id: int, number: int) -> int:
        """Record that a request is about to go out; the new attempt's id."""
        change = AttemptStart(item_id, run_id, number)
        ticket = await self._wait(self._db, _Ticket(None, change=change))
        assert ticket.attempt_id is not None
        return ticket.attempt_id

    async def end(self, prepare: Callable[[], tuple[AttemptEnd, T]]) -> T:
        """Run `prepare` in the files thread, then record the AttemptEnd it
        returns; its second value is returned here."""
        return await self.end_soon(prepare).result()

    def end_soon(
        self,
        prepare: Callable[[], tuple[AttemptEnd | AttemptRecord, T]],
        *,
        key: str = "",
        fallback: Fallback | None = None,
    ) -> Ending[T]:
        """Hand an attempt's end over now, without awaiting anything (so nothing
        can come between an answer and its handover); await `result()` later.

        `key` is the item's (the journal names answers by it); if `prepare`
        raises, `fallback(error)` is recorded instead and the task gets the error."""
        ticket = _Ticket(prepare, key=key, fallback=fallback)
        self._files.put([ticket])
        return Ending(ticket)

    async def _wait(self, lane: _Lane, ticket: _Ticket) -> _Ticket:
        lane.put([ticket])
        return await _result(ticket)

    def close(self) -> None:
        """No more changes: `serve` returns once those handed over are written."""
        self._files.close()

    async def serve(self) -> None:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._db.serve)
                try:
                    await self._files.serve()
                finally:
                    self._db.close()
        finally:
            if self._journal is not None:
                self._journal.close()  # kept if the store did not take everything

    # -- stages ---------------------------------------------------------------------

    def _prepare(self, batch: list[_Ticket]) -> None:
        """Files thread: each ticket's `prepare` (a failure stays with its ticket,
        which records its fallback), then the batch's paid answers to the journal."""
        for ticket in batch:
            assert ticket.prepare is not None
            try:
                ticket.change, ticket.value = ticket.prepare()
            except Exception as exc:
                ticket.error = exc
                if ticket.fallback is not None:
                    ticket.change = ticket.fallback(exc)
        if self._journal is not None:
            self._journal_batch(self._journal, batch)

    @staticmethod
    def _journal_batch(journal: Journal, batch: list[_Ticket]) -> None:
        paid = [
            ticket
            for ticket in batch
            if isinstance(ticket.change, AttemptEnd)
            and (ticket.change.result.usage is not None or ticket.change.result.outputs)
        ]
        if not paid:
            return
        try:
            journal.append([(t.key, cast("AttemptEnd", t.change)) for t in paid])
        except OSError:
            # The store write still follows; if it fails too, the images on disk
            # are what the next run adopts (journal.recover).
            return
        for ticket in paid:
            ticket.journaled = True

    def _to_db(self, batch: list[_Ticket]) -> None:
        _release([ticket for ticket in batch if ticket.change is None])
        self._db.put([ticket for ticket in batch if ticket.change is not None])

    def _write(self, batch: list[_Ticket]) -> None:
        """Store thread: every change of the batch in one transaction."""
        changes = []
        for ticket in batch:
            assert ticket.change is not None
            changes.append(ticket.change)
        try:
            ids = self._store.record_attempts(changes)
        except Exception as exc:
            for ticket in batch:
                ticket.error = exc
            return
        for ticket, attempt_id in zip(batch, ids, strict=True):
            ticket.attempt_id = attempt_id
        if self._on_written is not None:
            ends = [c for c in changes if isinstance(c, AttemptEnd)]
            if ends:
                self._on_written(ends)
        stored = [cast("AttemptEnd", t.change).attempt_id for t in batch if t.journaled]
        if stored and self._journal is not None:
            try:
                self._journal.stored(stored)
            except OSError:
                pass  # left in the journal: a replay skips what the store has


class Ending(Generic[T]):
    """An attempt's end, handed over to the recorder."""

    def __init__(self, ticket: _Ticket) -> None:
        self._ticket = ticket

    async def result(self) -> T:
        """Once written: the value `prepare` returned with the AttemptEnd."""
        ticket = await _result(self._ticket)
        return cast("T", ticket.value)


async def _result(ticket: _Ticket) -> _Ticket:
    with anyio.CancelScope(shield=True):
        await ticket.done.wait()
    if ticket.error is not None:
        raise ticket.error
    return ticket


def _stopped(batch: list[_Ticket]) -> None:
    for ticket in batch:
        if ticket.error is None:
            ticket.error = RuntimeError("the run's recorder stopped")
        ticket.done.set()


def _release(batch: list[_Ticket]) -> None:
    for ticket in batch:
        ticket.done.set()
