"""The only owner of concurrency: sends a job's pending items and records every attempt.

Owns: the task group, the adaptive concurrency limit and global pause on 429s, optional
requests-per-minute pacing, retries with exponential backoff and jitter that honour
server hints, the run-fatal stop, and Ctrl-C/SIGTERM handling that leaves in-flight
items resumable. Attempts and images are written by the run's Recorder (batched, in
two worker threads), which writes whatever it was handed even after a cancellation.
Must not parse YAML, print or exit.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import anyio
from anyio import to_thread

from runner import client, outputs, pricing
from runner.client import Kind, Outcome
from runner.errors import RunnerError
from runner.plan import Request
from runner.scheduler.recorder import Ending, Recorder
from runner.spec import Budget
from runner.store import AttemptEnd, AttemptResult, JobRow, Spend, Store, WorkItem

if TYPE_CHECKING:
    from pathlib import Path

    import httpx

    from runner.pricing import Price
    from runner.spec import Reference

DEFAULT_BACKOFF_BASE = 1.0  # seconds before the first retry, doubled each time
DEFAULT_BACKOFF_CAP = 60.0
DEFAULT_MAX_HINT = 900.0  # longest server-requested wait honoured before giving up
CHECKPOINT_EVERY = 30.0  # seconds between manifest rewrites during a run


@dataclass(frozen=True, slots=True)
class RunSettings:
    concurrency: int
    max_attempts: int
    max_unknown_retries: int
    rpm: float | None = None
    backoff_base: float = DEFAULT_BACKOFF_BASE
    backoff_cap: float = DEFAULT_BACKOFF_CAP
    request_timeout: float | None = None  # read timeout; None = client default
    max_response_bytes: int = client.DEFAULT_MAX_RESPONSE_BYTES
    budget: Budget = field(default_factory=Budget)
    price: Price | None = None  # for max_cost_usd; None = the model has no price
    spent: Spend = field(default_factory=Spend)  # what earlier runs used
    lease_ttl: float = 30.0
    handle_signals: bool = True


@dataclass(frozen=True, slots=True)
class Progress:
    total: int
    succeeded: int = 0
    failed: int = 0
    blocked: int = 0
    running: int = 0
    requests: int = 0
    retries: int = 0
    tokens: int = 0
    limit: int = 0  # current concurrency limit (lowered after 429s)
    concurrency: int = 0  # the configured limit
    elapsed: float = 0.0
    stopping: str | None = None  # why dispatching stopped, if it did

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.blocked

    @property
    def pending(self) -> int:
        return self.total - self.finished - self.running


@dataclass(frozen=True, slots=True)
class RunResult:
    progress: Progress
    stopped: str | None = None  # run-fatal reason (auth, balance, daily quota)
    stopped_status: int | None = None
    interrupted: bool = False
    budget_stop: str | None = None  # which budget cap stopped dispatching


ProgressCallback = Callable[[Progress], None]


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
) -> RunResult:
    """Send every item in `work` until each is terminal, or the run is stopped.

    `checkpoint` (e.g. a manifest rewrite) runs in a worker thread every
    CHECKPOINT_EVERY seconds, or ten times as long as it takes, if that is longer.
    """
    run = _Run(store, job, run_id, http, endpoint, job_folder, settings, on_progress)
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
                    tg.start_soon(run.renew_lease, lease_owner)
                    if checkpoint is not None:
                        tg.start_soon(_every, CHECKPOINT_EVERY, checkpoint)
                    if (
                        settings.handle_signals
                        and threading.current_thread() is threading.main_thread()
                    ):
                        tg.start_soon(run.watch_signals, tg.cancel_scope)
                    async with anyio.create_task_group() as workers:
                        # Twice as many workers as slots: while one records an
                        # answer, another already uses the slot it freed.
                        for _ in range(min(2 * settings.concurrency, len(work))):
                            workers.start_soon(run.worker, items)
                    tg.cancel_scope.cancel()
            finally:
                run.recorder.close()
    except BaseExceptionGroup as group:
        raise _first_error(group) from None
    return RunResult(
        progress=run.progress,
        stopped=run.stop_reason,
        stopped_status=run.stop_status,
        interrupted=run.interrupted,
        budget_stop=run.budget_stop,
    )


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """What a task group raised, unwrapped: a RunnerError (say, the store failed)
    must reach the command line as itself, not as a group with a traceback."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for kind in (KeyboardInterrupt, RunnerError):
        for leaf in leaves:
            if isinstance(leaf, kind):
                return leaf
    return group if len(leaves) != 1 else leaves[0]


async def _every(interval: float, action: Callable[[], object]) -> None:
    while True:
        await anyio.sleep(interval)
        started = time.monotonic()
        await to_thread.run_sync(action)
        interval = max(interval, 10 * (time.monotonic() - started))


class _Pacer:
    """Shared brakes: a concurrency limit that halves on 429 and grows back by one
    per window of successes, a run-wide pause until a server's retry hint, and an
    optional requests-per-minute spacing that widens by 10% on each 429 and narrows
    back as requests succeed (the job's `rpm:` may be a little above what the
    server really allows)."""

    def __init__(self, concurrency: int, rpm: float | None) -> None:
        self.max = concurrency
        self.limiter = anyio.CapacityLimiter(concurrency)
        self.resume_at = 0.0
        self.base_interval = 60.0 / rpm if rpm else 0.0
        self.interval = self.base_interval
        self.next_slot = 0.0
        self._wins = 0
        self._last_cut = 0.0

    async def wait_turn(self, stop: anyio.Event) -> None:
        """Wait out a run-wide pause and the rpm spacing; return at once on stop."""
        # A loop, not one sleep: another 429 may push resume_at later meanwhile.
        while (wait := self.resume_at - time.monotonic()) > 0 and not stop.is_set():
            with anyio.move_on_after(wait):
                await stop.wait()
        if self.interval and not stop.is_set():
            now = time.monotonic()
            slot = max(now, self.next_slot)
            self.next_slot = slot + self.interval
            if slot > now:
                with anyio.move_on_after(slot - now):
                    await stop.wait()

    def throttled(self, delay: float) -> None:
        now = time.monotonic()
        self.resume_at = max(self.resume_at, now + delay)
        if self.base_interval:
            self.interval = min(self.interval * 1.1, self.base_interval * 4)
        # One cut per wave: the in-flight requests of one burst all see the 429.
        if now - self._last_cut > max(delay, 1.0):
            self._last_cut = now
            self.limiter.total_tokens = max(1, int(self.limiter.total_tokens) // 2)
            self._wins = 0

    def succeeded(self) -> None:
        if self.interval > self.base_interval:
            self.interval = max(self.base_interval, self.interval * 0.99)
        current = int(self.limiter.total_tokens)
        if current >= self.max:
            return
        self._wins += 1
        if self._wins >= current:
            self._wins = 0
            self.limiter.total_tokens = current + 1


class _BudgetGuard:
    """Hard caps over the job's whole life: what earlier runs spent, plus what is
    in flight now counted as if it will be paid, plus the next request, must fit."""

    def __init__(self, budget: Budget, price: Price | None, spent: Spend) -> None:
        self.budget = budget
        self.price = price
        self.requests = spent.attempts
        self.images = spent.images
        self.cost = 0.0
        if price is not None:
            self.cost = sum(pricing.spend_cost(spent.tokens, spent.unpriced, price))
        self.in_flight = 0
        self.in_flight_cost = 0.0

    def estimate(self, request: Request) -> float:
        if self.price is None:
            return 0.0
        return pricing.estimate_cost(
            request.text, len(request.references), request.image_size, self.price
        )

    def reserve(self, cost: float) -> str | None:
        """Count one more request in flight, or say which cap it would pass."""
        b = self.budget
        if (
            b.max_requests is not None
            and self.requests + self.in_flight >= b.max_requests
        ):
            return (
                f"budget reached: max_requests {b.max_requests} "
                f"({self.requests} sent so far)"
            )
        if b.max_images is not None and self.images + self.in_flight >= b.max_images:
            return (
                f"budget reached: max_images {b.max_images} "
                f"({self.images} images so far)"
            )
        if b.max_cost_usd is not None:
            if self.price is None:
                return (
                    "budget.max_cost_usd is set but this model has no price; add "
                    "`pricing:` to the job file"
                )
            if self.cost + self.in_flight_cost + cost > b.max_cost_usd:
                return (
                    f"budget reached: max_cost_usd {b.max_cost_usd:g} "
                    f"(${self.cost:.4f} spent so far)"
                )
        self.in_flight += 1
        self.in_flight_cost += cost
        return None

    def settle(self, cost: float, result: AttemptResult | None) -> None:
        """Replace a reservation by what the attempt used (None: cut short)."""
        self.in_flight -= 1
        self.in_flight_cost -= cost
        self.requests += 1
        if result is not None:
            self.images += len(result.outputs)
        if self.price is None:
            return
        if result is not None and result.usage:
            self.cost += pricing.usage_cost(result.usage, self.price)
        elif result is None or result.outcome in ("unknown", "abandoned"):
            self.cost += cost  # possibly billed: assume it was


class _Run:
    def __init__(
        self,
        store: Store,
        job: JobRow,
        run_id: int,
        http: httpx.AsyncClient,
        endpoint: client.Endpoint,
        job_folder: Path,
        settings: RunSettings,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.store = store
        self.job = job
        self.run_id = run_id
        self.http = http
        self.endpoint = endpoint
        self.job_folder = job_folder
        self.settings = settings
        self.on_progress = on_progress
        self.pacer = _Pacer(settings.concurrency, settings.rpm)
        self.stop = anyio.Event()
        self.stop_reason: str | None = None
        self.stop_status: int | None = None
        self.interrupted = False
        self.budget_stop: str | None = None
        self.budget = _BudgetGuard(settings.budget, settings.price, settings.spent)
        self.started = time.monotonic()
        self.progress = Progress(total=0)
        self._refs: dict[str, bytes] = {}
        self.recorder = Recorder(store)

    # -- background tasks -------------------------------------------------------------

    async def renew_lease(self, owner: str) -> None:
        while True:
            await anyio.sleep(self.settings.lease_ttl / 3)
            await to_thread.run_sync(
                self.store.renew_lease, self.job, owner, self.settings.lease_ttl
            )

    async def watch_signals(self, scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                if not self.interrupted:
                    # First signal: send nothing new; requests already out are paid
                    # for, so let them land.
                    self.interrupted = True
                    self._halt(
                        "interrupted: finishing requests in flight (again to abandon)"
                    )
                else:
                    scope.cancel()
                    return

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
            refs = (
                await to_thread.run_sync(self._load_references, request.references)
                if request.references
                else []
            )
        except _ReferenceChanged as exc:
            await self._finish_without_attempt(item, str(exc))
            return
        tries, unknown, number = item.tries_used, item.unknown_used, item.attempts
        cost = self.budget.estimate(request)
        while not self.stop.is_set():
            async with self.pacer.limiter:
                # Paced while holding the slot, so requests leave in slot order.
                await self.pacer.wait_turn(self.stop)
                if self.stop.is_set():
                    return
                # Checked and reserved with no await in between: no other task
                # can take the same headroom, whatever the concurrency.
                over = self.budget.reserve(cost)
                if over is not None:
                    self._halt_budget(over)
                    return
                number += 1
                try:
                    ending = await self._attempt(
                        item, request, refs, number, tries, unknown
                    )
                except anyio.get_cancelled_exc_class():
                    self.budget.settle(cost, None)
                    raise
            # The slot is free as soon as the answer is in: writing it down does
            # not hold up the next request (there are more workers than slots).
            result = await self._recorded(ending)
            self.budget.settle(cost, result)
            tries += int(result.counts_as_try)
            unknown += int(result.counts_as_unknown)
            if result.item_status != "pending":
                return
            if result.outcome == Kind.FATAL_RUN:
                return
            delay = self._retry_delay(tries, result.retry_after)
            self._bump(retries=1)
            with anyio.move_on_after(delay):
                await self.stop.wait()

    async def _attempt(
        self,
        item: WorkItem,
        request: Request,
        refs: list[bytes],
        number: int,
        tries: int,
        unknown: int,
    ) -> Ending[AttemptResult]:
        """Begin an attempt, send it, and hand its answer to the recorder."""
        attempt_id = await self.recorder.begin(item.id, self.run_id, number)
        self._bump(running=1, requests=1)
        try:
            outcome = await client.generate(
                self.http,
                self.endpoint,
                request,
                refs,
                max_response_bytes=self.settings.max_response_bytes,
                spool_dir=self.job_folder / outputs.IMAGES_DIR,
            )
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
            self._bump(running=-1)
            raise
        # Decided before the slot is freed: after a run-fatal answer nothing more
        # is sent, and a 429 pauses the whole run before anyone sends again.
        if outcome.kind is Kind.FATAL_RUN:
            self._halt(outcome.reason, outcome.http_status)
        elif outcome.http_status == 429:
            self.pacer.throttled(self._retry_delay(tries + 1, outcome.retry_after))
        # The answer is in (and paid for): handed over with no await in between,
        # the recorder writes it whatever happens next.
        return self.recorder.end_soon(
            functools.partial(
                self._save_and_judge, item, attempt_id, outcome, tries, unknown
            )
        )

    async def _recorded(self, ending: Ending[AttemptResult]) -> AttemptResult:
        result = await ending.result()
        if result.outcome == Kind.FATAL_RUN:
            # Also when the images could not be written (disk full, permissions):
            # every further answer would be paid for and lost the same way.
            self._halt(result.reason, result.http_status)
        self._record(result)
        return result

    # -- decisions --------------------------------------------------------------

    def _judge(
        self, outcome: Outcome, saved: list[str], tries: int, unknown: int
    ) -> AttemptResult:
        """What an answer means for its item, given the tries it has used."""
        reason = outcome.reason
        if outcome.extra_urls and not reason:
            # A relay's image URL is part of the record: where the bytes came from.
            reason = "image fetched from " + ", ".join(outcome.extra_urls)
        result = AttemptResult(
            outcome=str(outcome.kind),
            reason=reason,
            item_status="pending",
            http_status=outcome.http_status,
            finish_reason=outcome.finish_reason,
            usage=outcome.usage,
            model_version=outcome.model_version,
            response_id=outcome.response_id,
            latency=outcome.latency,
            retry_after=outcome.retry_after,
        )
        max_attempts = self.settings.max_attempts
        kind = outcome.kind
        if kind is Kind.SUCCESS:
            return replace(result, item_status="succeeded", outputs=saved)
        if kind is Kind.BLOCKED:
            return replace(result, item_status="blocked")
        if kind is Kind.FATAL_ITEM:
            return replace(result, item_status="failed")
        if kind is Kind.FATAL_RUN:
            return replace(result, counts_as_try=False)
        if kind is Kind.UNKNOWN:
            result = replace(result, counts_as_unknown=True)
            if unknown + 1 > self.settings.max_unknown_retries:
                reason = (
                    f"{outcome.reason} (outcome unknown, possibly billed; not sent "
                    "again to avoid paying twice: `runner retry` sends it again)"
                )
                return replace(result, item_status="failed", reason=reason)
        if tries + 1 >= max_attempts:
            reason = f"{outcome.reason} (gave up after {max_attempts} attempts)"
            return replace(result, item_status="failed", reason=reason)
        return result

    def _save_and_judge(
        self,
        item: WorkItem,
        attempt_id: int,
        outcome: Outcome,
        tries: int,
        unknown: int,
    ) -> tuple[AttemptEnd, AttemptResult]:
        """Images to disk, and what the attempt comes to (the recorder's files
        thread; the recorder then stores the AttemptEnd)."""
        try:
            outcome, saved = self._save_images(item, outcome)
        except OSError as exc:
            _discard_spooled(outcome)  # what was not moved into place yet
            folder = self.job_folder / outputs.IMAGES_DIR
            reason = (
                f"cannot write images into {folder} ({exc.strerror or exc}); free "
                "space or fix its permissions, then submit again"
            )
            outcome = replace(outcome, kind=Kind.FATAL_RUN, reason=reason, images=())
            saved = []
        result = self._judge(outcome, saved, tries, unknown)
        return AttemptEnd(attempt_id, item.id, result), result

    def _save_images(
        self, item: WorkItem, outcome: Outcome
    ) -> tuple[Outcome, list[str]]:
        """Write a success's images (worker thread); bytes that are no image turn the
        outcome into UNKNOWN, since the call was made but nothing usable came back."""
        if outcome.kind is not Kind.SUCCESS:
            return outcome, []
        named: list[tuple[str, client.Image]] = []
        for index, image in enumerate(outcome.images):
            head = image.data if image.path is None else outputs.read_head(image.path)
            ext = outputs.sniff_extension(head)
            if ext is None:
                _discard_spooled(outcome)
                declared = image.mime_type or "no mime type"
                reason = (
                    f"the answer's image data is not an image (declared {declared})"
                )
                return replace(outcome, kind=Kind.UNKNOWN, reason=reason, images=()), []
            name = outputs.image_name(
                prompt_id=item.prompt_id,
                aspect_ratio=item.aspect_ratio,
                ref_label=item.ref_label,
                sample=item.sample,
                key=item.key,
                index=index,
                ext=ext,
            )
            named.append((name, image))
        saved = []
        for name, image in named:
            target = self.job_folder / outputs.IMAGES_DIR / name
            if image.path is not None:
                outputs.move_into_place(image.path, target)
            else:
                outputs.write_atomic(target, image.data)
            saved.append(f"{outputs.IMAGES_DIR}/{name}")
        return outcome, saved

    def _load_references(self, refs: tuple[Reference, ...]) -> list[bytes]:
        loaded = []
        for ref in refs:
            data = self._refs.get(ref.sha256)
            if data is None:
                try:
                    data = ref.abs_path.read_bytes()
                except OSError as exc:
                    raise _ReferenceChanged(
                        f"reference image {ref.path} can no longer be read "
                        f"({exc.strerror}); restore it, or edit the job file and "
                        "submit again"
                    ) from exc
                if hashlib.sha256(data).hexdigest() != ref.sha256:
                    raise _ReferenceChanged(
                        f"reference image {ref.path} changed since the job was "
                        "planned; submit the job file again to plan the new version"
                    )
                self._refs[ref.sha256] = data
            loaded.append(data)
        return loaded

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

    def _retry_delay(self, tries: int, hint: float | None) -> float:
        base = min(
            self.settings.backoff_cap,
            self.settings.backoff_base * 2.0 ** max(tries - 1, 0),
        )
        jittered = base / 2 + random.uniform(0, base / 2)
        if hint is not None and math.isfinite(hint):
            # Honour the server's wait, spread a little so retries do not arrive as one.
            return float(min(hint, DEFAULT_MAX_HINT) * random.uniform(1.0, 1.1))
        return jittered

    def _halt_budget(self, reason: str) -> None:
        if self.budget_stop is None:
            self.budget_stop = reason
        self.stop.set()
        self.progress = replace(self.progress, stopping=reason)
        self.emit()

    def _halt(self, reason: str, status: int | None = None) -> None:
        if self.stop_reason is None and not self.interrupted:
            self.stop_reason = reason
            self.stop_status = status
        self.stop.set()
        self.progress = replace(self.progress, stopping=reason)
        self.emit()

    def _record(self, result: AttemptResult) -> None:
        tokens = int((result.usage or {}).get("totalTokenCount") or 0)
        status = result.item_status
        if status == "succeeded":
            self.pacer.succeeded()
        self._bump(
            running=-1,
            tokens=tokens,
            succeeded=int(status == "succeeded"),
            failed=int(status == "failed"),
            blocked=int(status == "blocked"),
        )

    def _bump(self, **deltas: int) -> None:
        p = self.progress
        self.progress = replace(
            p,
            **{name: getattr(p, name) + d for name, d in deltas.items()},
            limit=int(self.pacer.limiter.total_tokens),
            elapsed=time.monotonic() - self.started,
        )
        self.emit()

    def emit(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress)


def _discard_spooled(outcome: Outcome) -> None:
    """Delete the answer's images spilled to temp files (none that were renamed)."""
    for image in outcome.images:
        if image.path is not None:
            image.path.unlink(missing_ok=True)


class _ReferenceChanged(Exception):
    pass
