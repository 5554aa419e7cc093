"""The run loop: sends a job's pending items until each is terminal or the run stops.

Owns the task groups (workers, lease renewal, checkpoints, signals), the steps of
an attempt (pace, reserve budget, begin, send, hand over, retry), the run-fatal stop
(also for a base URL that never answers, and the systematic-failure stop) and
Ctrl-C/SIGTERM handling that leaves in-flight items resumable. The run's Recorder
writes attempts and images, whatever it was handed, even after a cancellation.
Must not decide what an answer means (the judgement does), parse YAML, print or exit.
"""

from __future__ import annotations

import functools
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import anyio
from anyio import to_thread

from runner import client, outputs
from runner.errors import StoreError
from runner.plan import Request
from runner.scheduler import images, judgement
from runner.scheduler.budget import BudgetGuard, Refusal
from runner.scheduler.control import RunControl, RunPlace
from runner.scheduler.disk import DiskGuard
from runner.scheduler.journal import Journal
from runner.scheduler.judgement import History
from runner.scheduler.pacing import Pacer
from runner.scheduler.progress import Progress, ProgressCallback, RunResult
from runner.scheduler.recorder import Ending, Recorder, Written
from runner.scheduler.references import ReferenceChanged, References
from runner.scheduler.watch import first_error
from runner.store import AttemptEnd, AttemptResult, JobRow, Store, WorkItem

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from pathlib import Path

    import httpx

    from runner.client import Outcome
    from runner.scheduler.settings import RunSettings

CHECKPOINT_EVERY = 30.0  # seconds between manifest rewrites during a run


async def run_items(
    *,
    store: Store,
    job: JobRow,
    run_id: int,
    work: Sequence[WorkItem],
    http: httpx.AsyncClient,
    endpoint: client.Endpoint,
    job_folder: Path,
    settings: RunSettings,
    lease_owner: str,
    on_progress: ProgressCallback | None = None,
    checkpoint: Callable[[], object] | None = None,
    on_written: Written | None = None,
) -> RunResult:
    """Send every item in `work` until each is terminal, or the run is stopped.

    `checkpoint` (e.g. a manifest rewrite) runs in a worker thread every
    CHECKPOINT_EVERY seconds, or ten times as long as it takes, if that is longer.
    `on_written` is told of the attempt ends each store write recorded (see
    recorder.Written).
    """
    place = RunPlace(store, job, run_id, http, endpoint, job_folder, settings)
    run = _Run(place, on_progress, on_written)
    items = iter(work)
    run.progress = Progress(
        total=len(work), limit=settings.concurrency, concurrency=settings.concurrency
    )
    run.emit()
    try:
        # The recorder outlives the workers (even cancelled ones): what they hand
        # it is written before run_items returns.
        async with anyio.create_task_group() as writer:
            writer.start_soon(run.recorder.serve)
            try:
                async with anyio.create_task_group() as tg:
                    run.watch(tg, lease_owner)
                    if checkpoint is not None:
                        tg.start_soon(_every, CHECKPOINT_EVERY, checkpoint)
                    async with anyio.create_task_group() as workers:
                        # Twice as many workers as slots: while one records an
                        # answer, another already uses the slot it freed.
                        for _ in range(min(2 * settings.concurrency, len(work))):
                            workers.start_soon(run.worker, items)
                    tg.cancel_scope.cancel()
            finally:
                run.recorder.close()
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    if run.store_error is not None:
        kept = job_folder / outputs.JOURNAL
        raise StoreError(
            f"{run.store_error.message}; the answers already paid for are kept in "
            f"{kept}, and the next submit records them without sending them again"
        ) from run.store_error
    budget_stop = None
    if run.budget_stop is not None:
        # Said again now that every request in flight has ended: the spend in it
        # is all the run's, settled.
        budget_stop = run.budget.describe(run.budget_stop)
    return RunResult(
        progress=run.progress,
        stopped=run.stop_reason,
        stopped_status=run.stop_status,
        interrupted=run.interrupted,
        abandoned=run.abandoned,
        budget_stop=budget_stop,
    )


async def _every(interval: float, action: Callable[[], object]) -> None:
    while True:
        await anyio.sleep(interval)
        started = time.monotonic()
        await to_thread.run_sync(action)
        interval = max(interval, 10 * (time.monotonic() - started))


class _Run(RunControl):
    def __init__(
        self,
        place: RunPlace,
        on_progress: ProgressCallback | None,
        on_written: Written | None = None,
    ) -> None:
        super().__init__(place, on_progress)
        settings, job_folder = place.settings, place.job_folder
        self.pacer = Pacer(settings.concurrency, settings.rpm)
        # Whether the base URL has answered anything in this run (any HTTP status):
        # until it has, a connection that cannot be opened may mean a wrong URL.
        self.answered = False
        self.streak = judgement.first_streak(settings)
        self.abandoned = 0  # requests in flight when a second Ctrl-C cancelled them
        self.budget_stop: Refusal | None = None
        # The store refused a write: the run sends nothing more, lets the answers
        # in flight land (into the journal), then ends with this error.
        self.store_error: StoreError | None = None
        self.budget = BudgetGuard.for_run(settings)
        # Set (and replaced) when a reservation ends or the run stops, while some
        # request waits for room under a cap.
        self.budget_moved = anyio.Event()
        self.budget_waiting = 0
        self.references = References()
        self.disk = DiskGuard(job_folder)
        self.recorder = Recorder(place.store, Journal(job_folder), on_written)

    # -- workers ----------------------------------------------------------------------

    async def worker(self, items: Iterator[WorkItem]) -> None:
        while not self.stop.is_set():
            item = next(items, None)
            if item is None:
                return
            await self.process(item)

    async def process(self, item: WorkItem) -> None:
        request = Request.from_json(item.request_json)
        try:
            refs = self.references.cached(request.inline_files)
            if refs is None:
                refs = await to_thread.run_sync(
                    self.references.load, request.inline_files
                )
        except ReferenceChanged as exc:
            await self._finish_without_attempt(item, str(exc))
            return
        history = History(item.tries_used, item.unknown_used)
        number = item.attempts
        cost = self.budget.estimate(request)
        room = DiskGuard.answer_bytes(request.image_size)
        while not self.stop.is_set():
            async with self.pacer.limiter:
                # Paced while holding the slot, so requests leave in slot order.
                await self.pacer.wait_turn(self.stop)
                if self.stop.is_set():
                    return
                if not await self._reserve(cost):
                    return
                # Likewise the room its images may take: a full disk must never
                # cost a paid answer, so sending stops while those in flight fit.
                full = self.disk.reserve(room)
                if full is not None:
                    self._settle(cost, None)
                    self._halt(f"stopped sending: {full}")
                    return
                number += 1
                try:
                    ending = await self._attempt(item, request, refs, number, history)
                except anyio.get_cancelled_exc_class():
                    self._settle(cost, None)
                    self.disk.settle(room)
                    raise
                except StoreError as exc:  # not begun: nothing was sent
                    self._settle(cost, None)
                    self.disk.settle(room)
                    self._store_failed(exc)
                    return
            # The slot is free as soon as the answer is in: writing it down does
            # not hold up the next request (there are more workers than slots).
            try:
                result = await self._recorded(ending)
            except StoreError as exc:  # the answer is in the journal
                self._settle(cost, None)
                self._store_failed(exc)
                return
            finally:
                self.disk.settle(room)
            self._settle(cost, result)
            history = history.after(result)
            delay = judgement.next_try(result, history, self.settings)
            if delay is None:
                return
            self._bump(retries=1)
            with anyio.move_on_after(delay):
                await self.stop.wait()

    async def _reserve(self, estimate: float) -> bool:
        """Reserve room under the caps for one request, waiting while requests in
        flight may still leave some; False if a cap is reached or the run stops.
        Each check and its reservation have no await in between: no other task can
        take the same room, whatever the concurrency."""
        while (refusal := self.budget.reserve(estimate)) is not None:
            if not refusal.wait:
                self._halt_budget(refusal)
                return False
            self.budget_waiting += 1
            try:
                await self.budget_moved.wait()
            finally:
                self.budget_waiting -= 1
            if self.stop.is_set():
                return False
        return True

    def _settle(self, estimate: float, result: AttemptResult | None) -> None:
        self.budget.settle(estimate, result)
        self._wake_budget_waiters()

    def _wake_budget_waiters(self) -> None:
        if self.budget_waiting:
            self.budget_moved.set()
            self.budget_moved = anyio.Event()

    async def _attempt(
        self,
        item: WorkItem,
        request: Request,
        refs: list[client.InlineImage],
        number: int,
        history: History,
    ) -> Ending[AttemptResult]:
        """Begin an attempt, send it, and hand its answer to the recorder."""
        attempt_id = await self.recorder.begin(item.id, self.run_id, number)
        self._bump(running=1, requests=1)
        try:
            outcome = await self._send(request, refs)
            if not self.answered:
                if outcome.http_status is not None:
                    self.answered = True
                elif outcome.connect_failed:
                    outcome = await self._connect_again(request, refs, outcome)
        except anyio.get_cancelled_exc_class():
            abandoned = AttemptEnd(
                attempt_id,
                item.id,
                AttemptResult(
                    outcome="abandoned",
                    reason="interrupted while waiting for the answer",
                    item_status="pending",
                    counts_as_try=False,
                ),
            )
            await self.recorder.end(lambda: (abandoned, None))
            self.abandoned += 1
            self._bump(running=-1)
            raise
        # Decided before the slot is freed: after a run-fatal answer nothing more
        # is sent, and a 429 pauses the whole run before anyone sends again.
        if judgement.stops_run(outcome.kind):
            self._halt(outcome.reason, outcome.http_status)
        else:
            if self.streak is not None:
                self._follow_streak(outcome)
            pause = judgement.run_pause(outcome, history, self.settings)
            if pause is not None:
                self.pacer.throttled(pause)
        # The answer is in (and paid for): no longer in flight, and handed over
        # with no await in between, the recorder writes it whatever happens next.
        self._bump(running=-1, saving=1)
        return self.recorder.end_soon(
            functools.partial(self._save_and_judge, item, attempt_id, outcome, history),
            key=item.key,
            fallback=functools.partial(
                self._unsaved, item, attempt_id, outcome, history
            ),
        )

    async def _send(self, request: Request, refs: list[client.InlineImage]) -> Outcome:
        return await client.generate(
            self.http,
            self.endpoint,
            request,
            refs,
            max_response_bytes=self.settings.max_response_bytes,
            spool_dir=self.job_folder / outputs.IMAGES_DIR,
        )

    async def _connect_again(
        self, request: Request, refs: list[client.InlineImage], failed: Outcome
    ) -> Outcome:
        """No connection could be opened and the base URL has answered nothing in
        this run: wait a moment and try once more, in the same attempt (nothing was
        sent, so nothing can be paid twice). Failing again while nothing has
        answered, the URL is taken to be wrong and the outcome stops the run."""
        with anyio.move_on_after(self.settings.connect_retry_delay):
            await self.stop.wait()
        if self.answered:
            return failed  # another request got through: an ordinary failure
        if self.stop.is_set():
            # Stopped meanwhile: by another unreachable attempt (the same failure,
            # so no try of its own), else by Ctrl-C or a budget cap.
            return failed if self.stop_reason is None else judgement.unreachable(failed)
        outcome = await self._send(request, refs)
        if outcome.http_status is not None:
            self.answered = True
            return outcome
        if outcome.connect_failed and not self.answered:
            return judgement.unreachable(outcome)
        return outcome

    def _follow_streak(self, outcome: Outcome) -> None:
        """The systematic-failure watch, while the run's first requests all fail
        alike; decided before the slot is freed, so a stop sends nothing more."""
        assert self.streak is not None
        streak = judgement.follow_streak(self.streak, outcome)
        stop = None if streak is None else judgement.systematic_stop(streak)
        self.streak = None if stop else streak
        if stop is not None:
            self._halt(stop, outcome.http_status)

    async def _recorded(self, ending: Ending[AttemptResult]) -> AttemptResult:
        try:
            result = await ending.result()
        except BaseException:
            self._bump(saving=-1)
            raise
        if judgement.stops_run(result.outcome):
            # Also when the images could not be written (disk full, permissions):
            # every further answer would be paid for and lost the same way.
            self._halt(result.reason, result.http_status)
        self._record(result)
        return result

    # -- an answer's end ---------------------------------------------------------

    def _save_and_judge(
        self, item: WorkItem, attempt_id: int, outcome: Outcome, history: History
    ) -> tuple[AttemptEnd, AttemptResult]:
        """Images to disk, and what the attempt comes to (the recorder's files
        thread; the recorder then stores the AttemptEnd)."""
        outcome, saved = images.save(self.job_folder, item, outcome)
        result = judgement.judge(outcome, saved, history, self.settings)
        return AttemptEnd(attempt_id, item.id, result), result

    def _unsaved(
        self,
        item: WorkItem,
        attempt_id: int,
        outcome: Outcome,
        history: History,
        error: Exception,
    ) -> AttemptEnd:
        """What is recorded when writing an answer failed unexpectedly: its usage
        (it was paid for), and the item back to pending, to be sent again."""
        answer = judgement.judge(outcome, (), history, self.settings)
        result = replace(
            answer,
            outcome="unknown",
            reason=f"the answer could not be recorded ({error!r}); it is sent again",
            item_status="pending",
            outputs=(),
            counts_as_try=False,
            counts_as_unknown=False,
        )
        return AttemptEnd(attempt_id, item.id, result)

    async def _finish_without_attempt(self, item: WorkItem, reason: str) -> None:
        attempt_id = await self.recorder.begin(item.id, self.run_id, item.attempts + 1)
        end = AttemptEnd(
            attempt_id,
            item.id,
            AttemptResult(
                outcome="not_sent",
                reason=reason,
                item_status="failed",
                counts_as_try=False,
            ),
        )
        await self.recorder.end(lambda: (end, None))
        self._bump(failed=1)

    # -- bookkeeping ------------------------------------------------------------

    def _store_failed(self, error: StoreError) -> None:
        if self.store_error is None:
            self.store_error = error
        self._stop_dispatching(f"the store failed: {error}")

    def _halt_budget(self, refusal: Refusal) -> None:
        if self.budget_stop is None:
            self.budget_stop = refusal
        self._stop_dispatching(self.budget.describe(refusal))

    def _stop_dispatching(self, reason: str) -> None:
        self._wake_budget_waiters()
        super()._stop_dispatching(reason)

    def _record(self, result: AttemptResult) -> None:
        tokens = int((result.usage or {}).get("totalTokenCount") or 0)
        status = result.item_status
        if status == "succeeded":
            self.pacer.succeeded()
        self._bump(
            saving=-1,
            tokens=tokens,
            succeeded=int(status == "succeeded"),
            failed=int(status == "failed"),
            blocked=int(status == "blocked"),
        )

    def _progress_fields(self) -> dict[str, Any]:
        return {"limit": int(self.pacer.limiter.total_tokens)}
