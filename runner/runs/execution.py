"""One run of a job: the job lease, the scheduler, the manifest.

Owns: wiring a spec (or a stored job) and an open store to the scheduler for
`submit` and `retry`: the free-space check before a submit, the lease around the
run, recovery of what a stopped run left behind (its journal's answers and image
files first, then its open attempts), and the manifest rewrite after every run
(also after Ctrl-C). Async, for
callers that hold a store and an endpoint (the commands, tests, benchmarks). Must
not print, ask or exit.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from runner import outputs
from runner.errors import OutputError
from runner.reports import RunReport, StatusReport
from runner.runs.settings import (
    SendOptions,
    job_settings,
    run_settings,
    spec_batch_price,
    spec_price,
    stored_batch_price,
    stored_transport,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from runner import client, pricing
    from runner.reports import Sending
    from runner.review.live import LiveReview
    from runner.runs.planning import SubmitCheck
    from runner.runs.workspace import Workspace
    from runner.scheduler import ProgressCallback, RunResult, RunSettings
    from runner.spec import JobSpec
    from runner.store import BatchRow, JobRow, Store, SyncResult, WorkItem

_DEFAULT_SEND = SendOptions()

# The store (SQLAlchemy), the sending side (anyio, httpx, scheduler) and the
# job-file side (YAML, Pillow) are imported inside the functions that use them:
# `runner list` then starts in about two thirds of the time, and `runner status`
# (through `quick_status`, which reads with sqlite3) imports none of them.


async def submit_spec(
    spec: JobSpec,
    *,
    workspace: Workspace,
    store: Store,
    endpoint: client.Endpoint,
    send: SendOptions = _DEFAULT_SEND,
    on_progress: ProgressCallback | None = None,
    overrides: Mapping[str, Any] | None = None,
    check: SubmitCheck | None = None,
    warn: Callable[[str], None] | None = None,
    live: LiveReview | None = None,
) -> RunReport:
    """Plan the job, store the plan, and send every item not finished yet.

    `overrides` replaces RunSettings fields (backoff, signals) for this run;
    `check` is `check_submit(spec, store, price)` if the caller already has it;
    `warn` is told when the run sends fewer at once than asked (open-file limit);
    `live` follows the run to keep the gallery up to date (see `_run`).
    """
    from anyio import to_thread

    if check is None:
        from runner.runs.planning import check_submit

        # Nobody is asked here: the cost estimate is not read, nor learnt.
        check = await to_thread.run_sync(
            functools.partial(check_submit, learn=False, workspace=workspace),
            spec,
            store,
            spec_price(spec),
        )
    from runner.runs.planning import check_space

    check_space(workspace.job_folder(spec.name), check)
    plan, digest = check.plan, check.digest
    mode = None
    if send.by_batch(spec.transport):
        mode = "detach" if send.detach else "send"
    saved = job_settings(spec)
    settings = run_settings(
        saved, check.price, send, overrides, batch_price=spec_batch_price(spec)
    )
    # Like every store call of a run, off the event loop.
    job = await to_thread.run_sync(
        store.upsert_job, spec.name, str(spec.path), spec.model, saved
    )
    return await _run(
        store,
        job,
        workspace.job_folder(spec.name),
        endpoint,
        settings,
        on_progress,
        command="submit",
        simulated=send.simulated,
        prepare=lambda: (
            None if plan is None else store.sync_plan(job, plan.items, digest),
            0,
        ),
        batch_mode=mode,
        warn=warn,
        live=live,
    )


async def retry_job(
    job: JobRow,
    *,
    workspace: Workspace,
    store: Store,
    endpoint: client.Endpoint,
    price: pricing.Price | None,
    include_blocked: bool = False,
    send: SendOptions = _DEFAULT_SEND,
    on_progress: ProgressCallback | None = None,
    overrides: Mapping[str, Any] | None = None,
    warn: Callable[[str], None] | None = None,
    live: LiveReview | None = None,
) -> RunReport:
    """Send failed items (and blocked ones if asked) again, with fresh tries;
    `price` is `stored_price(job)`, which the caller has looked up; `warn` and
    `live` as for `submit_spec`. Through the Batch API if `send` or the job's
    `transport:` says so (SPEC 7)."""
    statuses = ("failed", "blocked") if include_blocked else ("failed",)
    mode = None
    if send.by_batch(stored_transport(job)):
        mode = "detach" if send.detach else "send"
    return await _stored_run(
        store,
        job,
        workspace,
        endpoint,
        price,
        send,
        overrides,
        on_progress,
        command="retry",
        prepare=lambda: (None, store.requeue(job, statuses)),
        batch_mode=mode,
        warn=warn,
        live=live,
    )


async def cancel_job(
    job: JobRow,
    *,
    workspace: Workspace,
    store: Store,
    endpoint: client.Endpoint,
    on_progress: ProgressCallback | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RunReport:
    """Cancel the job's live batches (SPEC 7), collecting what they finished."""
    from runner.runs.settings import stored_price

    return await _stored_run(
        store,
        job,
        workspace,
        endpoint,
        stored_price(job),
        _DEFAULT_SEND,
        overrides,
        on_progress,
        command="cancel",
        prepare=lambda: (None, 0),
        batch_mode="cancel",
    )


async def _stored_run(
    store: Store,
    job: JobRow,
    workspace: Workspace,
    endpoint: client.Endpoint,
    price: pricing.Price | None,
    send: SendOptions,
    overrides: Mapping[str, Any] | None,
    on_progress: ProgressCallback | None,
    *,
    command: str,
    prepare: Callable[[], tuple[SyncResult | None, int]],
    batch_mode: str | None = None,
    warn: Callable[[str], None] | None = None,
    live: LiveReview | None = None,
) -> RunReport:
    """A run of a stored job, with the settings it was submitted with."""
    settings = run_settings(
        job.settings, price, send, overrides, batch_price=stored_batch_price(job)
    )
    return await _run(
        store,
        job,
        workspace.job_folder(job.name),
        endpoint,
        settings,
        on_progress,
        command=command,
        simulated=send.simulated,
        prepare=prepare,
        batch_mode=batch_mode,
        warn=warn,
        live=live,
    )


def idle_report(
    store: Store,
    job: JobRow,
    workspace: Workspace,
    sending: Sending,
    price: pricing.Price | None,
) -> RunReport:
    """The report of a command that found nothing to send: the job's status, and
    no run (no lease taken, nothing written, the gallery left as it is)."""
    from runner.scheduler import Progress, RunResult

    return RunReport(
        job=job.name,
        result=RunResult(progress=Progress(total=0)),
        status=StatusReport(store.status(job), price, stored_batch_price(job)),
        manifest=workspace.job_folder(job.name) / outputs.MANIFEST,
        new_items=0,
        recovered=0,
        requeued=0,
        sending=sending,
    )


def remove_superseded(
    store: Store, job: JobRow, folder: Path, superseded: Mapping[int, list[str]]
) -> int:
    """Delete the simulated images of items that now have a real success and no
    longer name them (a real image of the same name has already replaced its file);
    an item without a real answer keeps them. How many files went."""
    removed = 0
    now = store.outputs_of(job, list(superseded))
    for item_id, old in superseded.items():
        status, current = now.get(item_id, ("", []))
        if status != "succeeded":
            continue
        for name in set(old) - set(current):
            path = folder / name
            if path.parent.parent == folder:  # images/<file>, nothing else
                try:
                    path.unlink(missing_ok=True)
                except OSError:
                    continue  # an image left behind must not hide the run
                removed += 1
    return removed


def write_manifest(store: Store, job: JobRow, folder: Path) -> Path:
    rows = store.manifest_rows(job)
    try:
        return outputs.write_manifest(folder, rows)
    except OSError as exc:
        raise OutputError(
            f"cannot write the manifest in {folder} ({exc.strerror or exc}); free "
            "space or fix its permissions, then submit the job again (nothing "
            "finished is sent again; the manifest is rewritten)"
        ) from exc


async def _run(
    store: Store,
    job: JobRow,
    folder: Path,
    endpoint: client.Endpoint,
    settings: RunSettings,
    on_progress: ProgressCallback | None,
    *,
    command: str,
    simulated: bool,
    prepare: Callable[[], tuple[SyncResult | None, int]],
    batch_mode: str | None = None,
    warn: Callable[[str], None] | None = None,
    live: LiveReview | None = None,
) -> RunReport:
    """One run under the job's lease: interactive (`batch_mode` None: the job's
    live batches collected first, if any are done), or through the Batch API
    (send, detach, cancel: see scheduler.BatchMode).

    `live` is started once the plan is stored and told of every attempt end the
    run records, when the run only sends interactively (what a batch brings is
    not told: its `finish` then builds the whole gallery)."""
    import anyio
    import httpx
    from anyio import to_thread

    from runner import client
    from runner.runs.open_files import fit_concurrency
    from runner.scheduler import (
        BatchMode,
        Progress,
        Recovered,
        RunResult,
        recover,
        run_batches,
        run_items,
    )

    # Before anything is opened: as many requests in flight as open files allow.
    fit = fit_concurrency(settings.concurrency, simulated=simulated)
    if fit.warning is not None:
        settings = replace(settings, concurrency=fit.concurrency)
        if warn is not None:
            warn(fit.warning)

    owner = uuid.uuid4().hex

    # item id -> the simulated images a real answer is to replace (SPEC 5)
    superseded: dict[int, list[str]] = {}
    live_batches: list[BatchRow] = []  # the job's live batches when the run starts

    def start() -> tuple[
        Recovered, int, SyncResult | None, int, list[WorkItem], int, RunSettings
    ]:
        folder.mkdir(parents=True, exist_ok=True)
        store.acquire_lease(job, owner, settings.lease_ttl)
        try:
            from runner.review.live import FOLDERS

            outputs.remove_stale_temp_files(folder, FOLDERS)
            # Before the open attempts are closed as abandoned: those whose answer
            # the journal or the images folder holds were paid for and are kept.
            found = recover(store, job, folder)
            recovered = store.recover_abandoned(job)
            sync, requeued = prepare()
            if command == "submit" and not simulated:
                superseded.update(store.requeue_simulated(job))
            work = store.pending_items(job)
            run_id = store.start_run(job, command, simulated)
            seeded = replace(settings, spent=store.spend(job))
            budget = settings.budget
            if budget.max_cost_usd is not None or budget.max_images is not None:
                # What each request in flight reserves: the dearest answer so far.
                seeded = replace(seeded, recorded=store.recorded_usage(job))
            if budget != type(budget)():
                # Items in live batches may still cost what they were reserved at.
                outstanding = tuple(store.unfinished(job, ("in_batch",)))
                seeded = replace(seeded, outstanding=outstanding)
            live_batches.extend(store.live_batches(job))
            return found, recovered, sync, requeued, work, run_id, seeded
        except BaseException:
            store.release_lease(job, owner)
            raise

    def wrap_up(result: RunResult) -> tuple[Path, StatusReport]:
        try:
            store.end_run(run_id, _run_outcome(result))
            if superseded:
                remove_superseded(store, job, folder, superseded)
            final = StatusReport(
                store.status(job), settings.price, settings.batch_price
            )
            return write_manifest(store, job, folder), final
        finally:
            store.release_lease(job, owner)

    # The settings with what earlier runs spent and recorded, read under the lease.
    found, recovered, sync, requeued, work, run_id, settings = await to_thread.run_sync(
        start
    )
    result = RunResult(progress=Progress(total=len(work)), interrupted=True)
    follow = live if batch_mode is None and not live_batches else None
    if follow is not None:
        follow.start(store, job, folder)
    try:
        timeout = None
        if settings.request_timeout is not None:
            timeout = httpx.Timeout(
                settings.request_timeout, connect=min(settings.request_timeout, 15.0)
            )
        http = client.make_http_client(
            concurrency=settings.concurrency,
            timeout=timeout,
            base_url=endpoint.base_url,
        )
        async with http:
            if batch_mode is None and live_batches:
                # Batches a detached submit left: collect those that are done.
                batch_mode = BatchMode.COLLECT
            if batch_mode is not None:
                result = await run_batches(
                    store=store,
                    job=job,
                    run_id=run_id,
                    http=http,
                    endpoint=endpoint,
                    job_folder=folder,
                    settings=settings,
                    lease_owner=owner,
                    mode=BatchMode(batch_mode),
                    simulated=simulated,
                    on_progress=on_progress,
                )
            if batch_mode in (None, BatchMode.COLLECT) and not (
                result.interrupted and batch_mode is not None
            ):
                collected = result if batch_mode is not None else None
                work = await to_thread.run_sync(store.pending_items, job)
                if work or collected is None:
                    result = await run_items(
                        store=store,
                        job=job,
                        run_id=run_id,
                        work=work,
                        http=http,
                        endpoint=endpoint,
                        job_folder=folder,
                        settings=settings,
                        lease_owner=owner,
                        on_progress=on_progress,
                        checkpoint=lambda: write_manifest(store, job, folder),
                        on_written=None if follow is None else follow.written,
                    )
                    if collected is not None:
                        left = collected.batches_left
                        result = replace(result, batches_left=left)
    finally:
        # Also after Ctrl-C: the manifest must show what finished.
        with anyio.CancelScope(shield=True):
            manifest, final = await to_thread.run_sync(wrap_up, result)
    return RunReport(
        job=job.name,
        result=result,
        status=final,
        manifest=manifest,
        new_items=sync.new if sync else 0,
        recovered=recovered,
        requeued=requeued,
        replayed=found.replayed,
        adopted=found.adopted,
    )


def _run_outcome(result: RunResult) -> str:
    if result.interrupted:
        return "interrupted"
    return "stopped" if result.stopped else "finished"
