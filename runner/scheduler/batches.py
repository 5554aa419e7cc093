"""The Batch API transport (SPEC 7): a job's pending items sent in batches, waited
for, and their results recorded exactly like interactive answers.

Owns: the probe before anything is created; splitting pending items into batches
(count, inline and file size limits) under the budget caps, each item reserved as
the interactive path would reserve it, at the batch price; each batch recorded
before its create call and found again by its display name after a crash, so an
item is never in two live batches; the JSONL input built on disk and uploaded;
polling with backoff; the results, matched by key (inline ones else by position),
saved, judged and recorded like any answer; the items of failed lines and of
expired or failed batches back to pending (bounded by max_attempts); a closed
batch's uploaded input deleted at the API. Ctrl-C stops the waiting, never the
batches. Must not parse YAML, print or exit.
"""

from __future__ import annotations

import collections
import enum
import functools
import secrets
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from anyio import to_thread

from runner import client, outputs
from runner.client import Kind, Outcome
from runner.client.batch import BatchCallFailed, NoBatchApi
from runner.errors import UsageError
from runner.plan import Request
from runner.scheduler import images, judgement
from runner.scheduler.budget import BudgetGuard, Refusal
from runner.scheduler.control import RunControl, RunPlace
from runner.scheduler.judgement import History
from runner.scheduler.progress import (
    BatchProgress,
    ProgressCallback,
    RunResult,
)
from runner.scheduler.recorder import Recorder
from runner.scheduler.references import ReferenceChanged, References
from runner.scheduler.watch import first_error
from runner.store import (
    AttemptEnd,
    AttemptRecord,
    AttemptResult,
    AttemptStart,
    BatchRow,
    JobRow,
    Store,
    WorkItem,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from io import BufferedWriter
    from pathlib import Path

    import httpx

    from runner.client.batch import BatchInfo, BatchResult
    from runner.client.blobs import BlobExtractor
    from runner.scheduler.recorder import Ending
    from runner.scheduler.settings import RunSettings

T = TypeVar("T")


class BatchMode(enum.StrEnum):
    """What a batch run does with the job's pending items and live batches."""

    SEND = "send"  # batch the pending items, wait for every batch, collect
    DETACH = "detach"  # batch the pending items, collect what is done, return
    COLLECT = "collect"  # create nothing; collect what is done (interactive runs)
    CANCEL = "cancel"  # cancel the live batches; collect what is done


# Results saved ahead of being written down, at most: their images may be in memory.
_IN_HAND = 64
_STATE_WORDS = {
    "BATCH_STATE_EXPIRED": "expired before it ran (batches expire after 48 hours)",
    "BATCH_STATE_FAILED": "failed",
    "BATCH_STATE_SUCCEEDED": "brought no result for it",
}


async def run_batches(
    *,
    store: Store,
    job: JobRow,
    run_id: int,
    http: httpx.AsyncClient,
    endpoint: client.Endpoint,
    job_folder: Path,
    settings: RunSettings,
    lease_owner: str,
    mode: BatchMode,
    simulated: bool = False,
    on_progress: ProgressCallback | None = None,
) -> RunResult:
    """Send the job's pending items through the Batch API, or only collect or
    cancel its live batches (`mode`); UsageError if the endpoint has no Batch API
    and batches are to be made."""
    place = RunPlace(store, job, run_id, http, endpoint, job_folder, settings)
    run = _BatchRun(place, simulated, on_progress)
    try:
        async with anyio.create_task_group() as writer:
            writer.start_soon(run.recorder.serve)
            try:
                async with anyio.create_task_group() as tg:
                    run.watch(tg, lease_owner)
                    await run.main(mode)
                    tg.cancel_scope.cancel()
            finally:
                run.recorder.close()
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    left = [b for b in await to_thread.run_sync(store.live_batches, job) if b.live]
    return RunResult(
        progress=run.progress,
        stopped=run.stop_reason,
        stopped_status=run.stop_status,
        interrupted=run.interrupted,
        budget_stop=None
        if run.budget_stop is None
        else run.budget.describe(run.budget_stop),
        batches_left=len([b for b in left if b.simulated == simulated]),
        detached=mode is BatchMode.DETACH,
    )


@dataclass(slots=True)
class _Chunk:
    """The next batch's input, being written to disk."""

    path: Path
    file: BufferedWriter
    items: list[tuple[WorkItem, float]]  # with the estimate reserved for each
    size: int = 0
    not_sent: int = 0  # items failed before their request was built


class _BatchRun(RunControl):
    def __init__(
        self,
        place: RunPlace,
        simulated: bool,
        on_progress: ProgressCallback | None,
    ) -> None:
        super().__init__(place, on_progress)
        settings = place.settings
        self.simulated = simulated
        self.budget_stop: Refusal | None = None
        self.budget = BudgetGuard.for_run(settings, by_batch=True)
        self.reserved: dict[int, float] = {}  # item id -> its estimate, this run
        self.recorder = Recorder(place.store)
        self.references = References()
        self.shown: dict[int, BatchProgress] = {}  # batch id -> as last seen
        self.created: set[int] = set()  # batches this run made
        self.model = place.job.model or ""
        # where answers' image data is spooled: beside the images, so that keeping
        # one is a rename
        self.spool = place.job_folder / outputs.IMAGES_DIR

    # -- the steps --------------------------------------------------------------------

    async def main(self, mode: BatchMode) -> None:
        creating = mode in (BatchMode.SEND, BatchMode.DETACH)
        live = await self._live()
        pending = await self._thread(self.store.pending_items, self.job)
        if not creating:
            pending = []
        waiting = 0
        if live:
            waiting = (await self._thread(self.store.counts, self.job))["in_batch"]
        self._bump(total=len(pending) + waiting, running=waiting)
        if not live and not pending:
            return
        # Inputs a stopped run left: never sent again as they are (their batch
        # was created or is looked up by name, or its items are batched anew).
        await self._thread(_clear_inputs, self.job_folder / outputs.BATCHES_DIR)
        if not await self._probe(required=creating):
            return
        for batch in live:
            if batch.remote_name is None:
                await self._resolve(batch)
        if mode is BatchMode.CANCEL:
            for batch in await self._live():
                await self._cancel(batch)
        while not self.stop.is_set():
            if creating and pending:
                await self._create_all(pending)
            if mode is BatchMode.SEND:
                await self._wait_all()
            else:
                await self._poll_all()
            if mode is not BatchMode.SEND or self.budget_stop is not None:
                return
            # Items a batch brought back to pending (failed lines, an expired
            # batch) go in a new batch, until their attempts are used up.
            pending = await self._thread(self.store.pending_items, self.job)
            if not pending:
                return

    async def _live(self) -> list[BatchRow]:
        """The job's live batches this run can reach; those made on a --simulate
        API that is gone are closed first (their items back to pending)."""
        reachable = []
        for batch in await self._thread(self.store.live_batches, self.job):
            if batch.simulated and batch.id not in self.created:
                # Each --simulate command has its own simulated API: the one that
                # made this batch has gone with its command (and its files too).
                await self._close(
                    batch,
                    "made on a simulated API that ended with its command",
                    api_gone=True,
                )
            elif batch.simulated == self.simulated:
                reachable.append(batch)
        return reachable

    async def _probe(self, *, required: bool) -> bool:
        """Whether the endpoint serves the Batch API. Where batches are to be made,
        no Batch API is a usage error (exit 2, nothing sent); where they are only
        collected, they are left for a submit that can reach them."""
        try:
            await client.batch.probe(self.http, self.endpoint, spool_dir=self.spool)
        except NoBatchApi as missing:
            if required:
                raise UsageError(missing.outcome.reason) from None
            return False
        except BatchCallFailed as failed:
            if required:
                self._halt(
                    f"the Batch API could not be reached: {failed.outcome.reason}",
                    failed.outcome.http_status,
                )
            return False
        return True

    async def _resolve(self, batch: BatchRow) -> None:
        """A batch recorded but never named by the API (the runner stopped during
        its create call): find it by its display name, else close it, its items
        back to pending (the create never took)."""
        looked, found = await self._lookup(
            batch, f"could not look up batch {batch.display_name}"
        )
        if not looked:
            return
        if found is None:
            await self._close(
                batch, "not created: the runner stopped before the API answered"
            )
            return
        await self._seen(batch, found)

    async def _lookup(
        self, batch: BatchRow, failing: str
    ) -> tuple[bool, BatchInfo | None]:
        """Whether the API could be asked for the batch by its display name, and
        what it found. If it could not, the run stops (saying `failing`) and the
        batch keeps its items until a later submit can tell."""
        try:
            return True, await client.batch.find_batch(
                self.http, self.endpoint, batch.display_name, spool_dir=self.spool
            )
        except BatchCallFailed as failed:
            self._halt(
                f"{failing} ({failed.outcome.reason}); its items stay in it, and the "
                "next submit looks it up by name before it creates another",
                failed.outcome.http_status,
            )
            return False, None

    async def _cancel(self, batch: BatchRow) -> None:
        if batch.remote_name is None:
            return
        try:
            await client.batch.cancel_batch(self.http, self.endpoint, batch.remote_name)
        except BatchCallFailed as failed:
            if failed.outcome.http_status == 404:
                # Unknown to this endpoint (deleted there, or made through another
                # base URL): forgotten, as asked, its items back to pending.
                await self._close(
                    batch,
                    f"not found at {self.endpoint.base_url} when cancelled; forgotten",
                )
                return
            # Refused because it ended already: the poll below collects it.
            if failed.outcome.http_status not in (400, 409):
                self._halt(
                    f"could not cancel {batch.display_name}: {failed.outcome.reason}",
                    failed.outcome.http_status,
                )

    # -- creating -----------------------------------------------------------------

    async def _create_all(self, pending: Sequence[WorkItem]) -> None:
        """Batches of the pending items, cut at the count and size limits, each
        created once its items are reserved under the caps."""
        folder = self.job_folder / outputs.BATCHES_DIR
        await self._thread(functools.partial(folder.mkdir, parents=True, exist_ok=True))
        queue = collections.deque(pending)
        while queue and not self.stop.is_set() and self.budget_stop is None:
            chunk = await self._thread(self._fill, folder, queue)
            self._bump(failed=chunk.not_sent)
            if chunk.items:
                await self._create(chunk)
            else:
                chunk.path.unlink(missing_ok=True)

    def _fill(self, folder: Path, queue: collections.deque[WorkItem]) -> _Chunk:
        """The next batch's input lines, written to a file (a worker thread): items
        taken from `queue` while they fit the limits and the budget."""
        path = folder / f".building-{secrets.token_hex(6)}.jsonl"
        chunk = _Chunk(path, path.open("wb"), [])
        s = self.settings
        try:
            while queue and len(chunk.items) < s.batch_max_items:
                item = queue[0]
                request = Request.from_json(item.request_json)
                try:
                    refs = self.references.load(request.references)
                except ReferenceChanged as exc:
                    queue.popleft()
                    self._not_sent(item, str(exc))
                    chunk.not_sent += 1
                    continue
                body = client.build_body(request, refs)
                line = client.batch.request_line(item.key, body)
                if chunk.items and chunk.size + len(line) > s.batch_file_bytes:
                    break
                estimate = self.budget.estimate(request)
                refusal = self.budget.reserve(estimate)
                if refusal is not None:
                    self._halt_budget(refusal)
                    queue.clear()
                    break
                queue.popleft()
                chunk.file.write(line)
                chunk.size += len(line)
                chunk.items.append((item, estimate))
                self.reserved[item.id] = estimate
        finally:
            chunk.file.close()
        return chunk

    def _not_sent(self, item: WorkItem, reason: str) -> None:
        """An item whose request cannot be built (its reference image changed):
        failed without a request, as the interactive path fails it."""
        [attempt_id] = self.store.record_attempts(
            [AttemptStart(item.id, self.run_id, item.attempts + 1)]
        )
        assert attempt_id is not None
        result = AttemptResult(
            outcome="not_sent", reason=reason, item_status="failed", counts_as_try=False
        )
        self.store.record_attempts([AttemptEnd(attempt_id, item.id, result)])

    async def _create(self, chunk: _Chunk) -> None:
        """Record the batch (its items `in_batch`), then create it: inline when
        small, else through an uploaded JSONL file."""
        s = self.settings
        small = len(chunk.items) <= s.batch_inline_items
        kind = "inline" if small and chunk.size <= s.batch_inline_bytes else "file"
        batch = await self._thread(
            functools.partial(
                self.store.record_batch,
                self.job,
                self.run_id,
                [item.id for item, _ in chunk.items],
                model=self.model,
                input_kind=kind,
                simulated=self.simulated,
            )
        )
        self.created.add(batch.id)
        path = chunk.path.with_name(f"{batch.display_name}.jsonl")
        await self._thread(chunk.path.rename, path)
        self._bump(running=len(chunk.items))
        self._show(batch, "")
        try:
            file_name = None
            if kind == "file":
                file_name = await client.batch.upload_file(
                    self.http, self.endpoint, path, batch.display_name
                )
                await self._thread(
                    functools.partial(
                        self.store.update_batch, batch.id, input_file=file_name
                    )
                )
            info = await client.batch.create_batch(
                self.http,
                self.endpoint,
                self.model,
                batch.display_name,
                requests_file=path if file_name is None else None,
                file_name=file_name,
            )
        except BatchCallFailed as failed:
            found = await self._after_failed_create(batch, chunk, failed.outcome)
            if found is None:
                await self._thread(functools.partial(path.unlink, missing_ok=True))
                return
            info = found
        await self._seen(batch, info)
        await self._thread(functools.partial(path.unlink, missing_ok=True))

    async def _after_failed_create(
        self, batch: BatchRow, chunk: _Chunk, outcome: Outcome
    ) -> BatchInfo | None:
        """A create that failed: if it may have been created anyway (no answer, or
        a server error), the batch found by its display name; else (or if none is
        found) the batch closed, its items back to pending, and the run stopped."""
        maybe = outcome.kind is Kind.UNKNOWN or (outcome.http_status or 0) >= 500
        if maybe:
            looked, found = await self._lookup(
                batch,
                f"creating batch {batch.display_name} got no answer "
                f"({outcome.reason}), and looking it up failed",
            )
            if not looked or found is not None:
                return found
        await self._close(batch, f"not created: {outcome.reason}")
        self.shown.pop(batch.id, None)
        for item, estimate in chunk.items:
            self.budget.release(estimate)
            self.reserved.pop(item.id, None)
        self._halt(
            f"creating a batch failed: {outcome.reason}; its items stay pending",
            outcome.http_status,
        )
        return None

    # -- waiting ----------------------------------------------------------------------

    async def _wait_all(self) -> None:
        """Poll the live batches, with backoff, until none is left or the run
        stops; collect each as it ends."""
        delay = self.settings.batch_poll
        while not self.stop.is_set():
            if not await self._poll_all():
                return
            with anyio.move_on_after(delay):
                await self.stop.wait()
            delay = min(delay * 1.5, self.settings.batch_poll_max)

    async def _poll_all(self) -> int:
        """Ask for each live batch once, collecting those that ended; how many
        are still live."""
        live = [b for b in await self._live() if b.remote_name is not None]
        left = 0
        for batch in live:
            if self.stop.is_set() and self.interrupted:
                return left
            left += not await self._poll(batch)
        return left

    async def _poll(self, batch: BatchRow) -> bool:
        """Ask for `batch`; collect it if it ended. Whether it is closed now."""
        assert batch.remote_name is not None
        try:
            info = await client.batch.get_batch(
                self.http,
                self.endpoint,
                batch.remote_name,
                spool_dir=self.spool,
            )
        except BatchCallFailed as failed:
            outcome = failed.outcome
            if outcome.http_status == 404:
                self._halt(
                    f"batch {batch.remote_name} ({batch.display_name}) is not found "
                    f"at {self.endpoint.base_url}; if it was made through another "
                    "base URL, submit with that one (`runner cancel` forgets it)",
                    404,
                )
            elif judgement.stops_run(outcome.kind):
                self._halt(outcome.reason, outcome.http_status)
            return False  # transient or unknown: asked again at the next poll
        await self._seen(batch, info)
        if not info.terminal:
            return False
        return await self._collect(batch, info)

    async def _seen(self, batch: BatchRow, info: BatchInfo) -> None:
        await self._thread(
            functools.partial(
                self.store.update_batch,
                batch.id,
                remote_name=info.name or batch.remote_name,
                state=info.state,
                result_file=info.result_file,
                **info.stats,
            )
        )
        done = (info.succeeded or 0) + (info.failed or 0)
        self._show(batch, info.state, done)

    # -- collecting ---------------------------------------------------------------

    async def _collect(self, batch: BatchRow, info: BatchInfo) -> bool:
        """Record the results of an ended batch (its items still waiting), put
        the items it brought nothing for back to pending, and close it. False if
        its results could not be read (it stays live: asked again later)."""
        members = await self._thread(self.store.batch_items, batch.id)
        order = [item for item, _ in members]
        waiting = {item.key: item for item, still in members if still}
        seen: set[int] = set()
        in_hand: collections.deque[
            tuple[Ending[AttemptResult], int, BlobExtractor | None]
        ] = collections.deque()

        async def take(
            item: WorkItem, result: BatchResult, own: BlobExtractor | None
        ) -> None:
            outcome = await client.batch.result_outcome(
                self.http,
                self.endpoint,
                result,
                model=self.model,
                max_response_bytes=self.settings.max_response_bytes,
            )
            seen.add(item.id)
            in_hand.append(
                (
                    self.recorder.end_soon(
                        functools.partial(self._save, batch.id, item, outcome)
                    ),
                    item.id,
                    own,
                )
            )
            if len(in_hand) >= _IN_HAND:
                await self._settled(*in_hand.popleft())

        try:
            if info.result_file is not None:
                async with client.batch.file_results(
                    self.http,
                    self.endpoint,
                    info.result_file,
                    spool_dir=self.spool,
                ) as lines:
                    async for result in lines:
                        item = waiting.get(result.key or "")
                        if item is None or item.id in seen:
                            _discard(result.blobs)
                            continue
                        await take(item, result, result.blobs)
            for item, result in inline_matches(info.results, order, waiting):
                if item.id not in seen:
                    await take(item, result, None)
        except BatchCallFailed as failed:
            if judgement.stops_run(failed.outcome.kind):
                self._halt(failed.outcome.reason, failed.outcome.http_status)
            return False
        finally:
            while in_hand:
                await self._settled(*in_hand.popleft())
            if info.results:
                _discard(info.results[0].blobs)
        left = [item for item in waiting.values() if item.id not in seen]
        if left and info.state != "BATCH_STATE_CANCELLED":
            # Expired, failed, or no result for it: a try used (bounded by
            # max_attempts), nothing billed; sent again in a later batch.
            why = _STATE_WORDS.get(info.state, "ended")
            detail = f": {info.error}" if info.error else ""
            outcome = Outcome(Kind.TRANSIENT, f"its batch {why}{detail}")
            for item in left:
                await self._settled(
                    self.recorder.end_soon(
                        functools.partial(self._save, batch.id, item, outcome)
                    ),
                    item.id,
                    None,
                )
        await self._close(batch, None)
        return True

    def _save(
        self, batch_id: int, item: WorkItem, outcome: Outcome
    ) -> tuple[AttemptRecord, AttemptResult]:
        """An answer's images into place, and what it means for its item (the
        recorder's files thread), as for an interactive answer."""
        outcome, saved = images.save(self.job_folder, item, outcome)
        history = History(item.tries_used, item.unknown_used)
        result = judgement.judge(outcome, saved, history, self.settings)
        record = AttemptRecord(
            item.id, self.run_id, item.attempts + 1, batch_id, result
        )
        return record, result

    async def _settled(
        self, ending: Ending[AttemptResult], item_id: int, own: BlobExtractor | None
    ) -> None:
        """Once a result is written: the budget, the progress, a run-fatal stop."""
        try:
            result = await ending.result()
        finally:
            _discard(own)
        estimate = self.reserved.pop(item_id, None)
        if estimate is not None:
            self.budget.settle(estimate, result)
        status = result.item_status
        if judgement.stops_run(result.outcome):
            self._halt(result.reason, result.http_status)
        self._bump(
            running=-1,
            requests=int(result.http_status is not None),
            tokens=int((result.usage or {}).get("totalTokenCount") or 0),
            succeeded=int(status == "succeeded"),
            failed=int(status == "failed"),
            blocked=int(status == "blocked"),
        )

    async def _close(
        self, batch: BatchRow, error: str | None, *, api_gone: bool = False
    ) -> None:
        """Close a batch; the items it still held are back to pending. Then its
        uploaded input is deleted (unless the API that holds it is gone)."""
        back = await self._thread(
            functools.partial(self.store.close_batch, batch.id, error=error)
        )
        if batch.id in self.shown:
            state = self.shown[batch.id].state or "BATCH_STATE_FAILED"
            self.shown[batch.id] = replace(self.shown[batch.id], state=state)
        self._bump(running=-back if batch.simulated == self.simulated else 0)
        await self._delete_input(batch.id, api_gone=api_gone)

    async def _delete_input(self, batch_id: int, *, api_gone: bool) -> None:
        """Delete a closed batch's uploaded input file at the API, and forget it.
        A delete that fails is left as it is: the store keeps the file's name
        (status shows it) and the API deletes it 48 hours after its upload
        (ai.google.dev/gemini-api/docs/files); the run goes on."""
        closed = await self._thread(self.store.get_batch, batch_id)
        if closed is None or closed.input_file is None:
            return
        if not api_gone:
            try:
                await client.batch.delete_file(
                    self.http, self.endpoint, closed.input_file
                )
            except BatchCallFailed as failed:
                if failed.outcome.http_status != 404:  # 404: gone already
                    return
        await self._thread(
            functools.partial(self.store.update_batch, batch_id, input_file=None)
        )

    # -- bookkeeping ------------------------------------------------------------

    def _halt_budget(self, refusal: Refusal) -> None:
        """No more batches: the caps are reached (those made are still waited for)."""
        if self.budget_stop is None:
            self.budget_stop = refusal

    def _show(self, batch: BatchRow, state: str, done: int = 0) -> None:
        self.shown[batch.id] = BatchProgress(
            batch.display_name, state, batch.items, done
        )
        self._bump()

    def _progress_fields(self) -> dict[str, Any]:
        return {"batches": tuple(self.shown[k] for k in sorted(self.shown))}

    async def _thread(self, call: Callable[..., T], *args: Any) -> T:
        return await to_thread.run_sync(call, *args)


def inline_matches(
    results: Sequence[BatchResult],
    order: Sequence[WorkItem],
    waiting: Mapping[str, WorkItem],
) -> list[tuple[WorkItem, BatchResult]]:
    """Inline results with the items (still `waiting`, by key) they answer: by the
    key the API echoed in the result's metadata, else by position, since inlined
    responses come "in the same order as the input requests"
    (GenerateContentBatchOutput, ai.google.dev/api/batch-mode)."""
    matched = []
    for index, result in enumerate(results):
        key = result.key
        if key is None and index < len(order):
            key = order[index].key
        item = waiting.get(key or "")
        if item is not None:
            matched.append((item, result))
    return matched


def _clear_inputs(folder: Path) -> None:
    if folder.is_dir():
        for path in folder.glob("*.jsonl"):
            path.unlink(missing_ok=True)


def _discard(blobs: BlobExtractor | None) -> None:
    """Spooled image files an answer did not use (used ones were moved)."""
    if blobs is not None:
        blobs.discard()
