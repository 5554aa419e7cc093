"""The entry points the CLI calls, one per command, each in one pass.

Owns: for each command, opening the store, loading the job, deciding (policy),
running, the gallery step, and returning ONE report to render. The CLI hands in
what only it can do as callbacks: ask a question, show progress, show a warning.
Must not print, read input or exit.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from typing import TYPE_CHECKING, TypeAlias

from runner.errors import RunnerError, UsageError
from runner.reports import GalleryStep, JobList, ReviewReport
from runner.runs.job_status import quick_status, read_status
from runner.runs.settings import (
    SendOptions,
    spec_batch_price,
    spec_price,
    stored_batch_price,
    stored_price,
    stored_transport,
)
from runner.runs.workspace import find_job

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from contextlib import AbstractContextManager
    from pathlib import Path

    from runner.reports import PlanPreview, RunReport, Sending, StatusReport
    from runner.review.live import LiveReview
    from runner.runs.policy import Confirm
    from runner.runs.workspace import Workspace
    from runner.scheduler import ProgressCallback
    from runner.store import Store

# The sending side (planning, policy, endpoint, execution and, through them, the
# scheduler) is imported by the commands that send: `runner status` imports none
# of it.

# Shows a run's progress while it is open (and only then: not while a question is
# asked, nor while the gallery is built); None shows nothing.
ProgressDisplay: TypeAlias = (
    "Callable[[], AbstractContextManager[ProgressCallback | None]]"
)
Warn: TypeAlias = "Callable[[str], None]"
# Says what a run is about to send, just before it sends.
Announce: TypeAlias = "Callable[[Sending], None]"

_DEFAULT_SEND = SendOptions()


def submit(
    job_file: Path,
    *,
    workspace: Workspace,
    send: SendOptions = _DEFAULT_SEND,
    yes: bool = False,
    take_over: bool = False,
    confirm: Confirm | None = None,
    progress: ProgressDisplay | None = None,
    warn: Warn | None = None,
    announce: Announce | None = None,
) -> RunReport:
    """Load, plan and store the job, ask if the policy says so (`confirm` None:
    nobody to ask), say what it sends (`announce`), send what is not finished,
    rebuild the gallery. A job name made from another existing job file is
    refused unless `take_over`."""
    from runner.plan import check_grid_size
    from runner.runs import policy
    from runner.runs.endpoint import open_endpoint
    from runner.runs.execution import submit_spec
    from runner.runs.planning import check_submit
    from runner.runs.workspace import claim_name
    from runner.spec import load_job

    spec = load_job(job_file)
    # Before the store is opened or the simulator started: a grid past the limit
    # is refused with nothing written, and however large, at once.
    check_grid_size(spec)
    by_batch = send.by_batch(spec.transport)
    check_detach(send, by_batch)
    policy.confirm_threshold()  # a bad RUNNER_CONFIRM_USD is refused before any work
    workspace.check_output()  # images go there, whichever --db holds the store
    if warn is not None:
        for warning in spec.warnings:
            warn(warning)
    price = spec_price(spec)
    with open_endpoint(send) as endpoint:
        store = workspace.open_store()
        try:
            claim_name(store.get_job(spec.name), spec, take_over)
            # The estimate is read only where a question may show it.
            check = check_submit(
                spec,
                store,
                price,
                send.simulated,
                learn=not yes,
                workspace=workspace,
                batch_price=spec_batch_price(spec) if by_batch else None,
            )
            if warn is not None:
                for note in check.notes:
                    warn(note)
            policy.confirm_submit(
                spec.name, check, yes=yes, confirm=confirm, simulated=send.simulated
            )
            sending = check.sending(spec.name, send.simulated, by_batch=by_batch)
            if announce is not None:
                announce(sending)
            return _send(
                store,
                workspace,
                send,
                progress,
                sending,
                lambda on_progress, live: submit_spec(
                    spec,
                    workspace=workspace,
                    store=store,
                    endpoint=endpoint,
                    send=send,
                    on_progress=on_progress,
                    check=check,
                    warn=warn,
                    live=live,
                ),
            )
        finally:
            store.close()


def retry(
    job: str,
    *,
    workspace: Workspace,
    send: SendOptions = _DEFAULT_SEND,
    include_blocked: bool = False,
    progress: ProgressDisplay | None = None,
    announce: Announce | None = None,
    warn: Warn | None = None,
) -> RunReport:
    """Send a stored job's failed items again (blocked ones too if asked), then
    rebuild the gallery; with nothing to send, the job's status and no run.
    `job` is a job name or a job file. `send.batch` None: through the Batch API
    if the job was submitted with `transport: batch`."""
    from runner.runs.endpoint import open_endpoint
    from runner.runs.execution import idle_report, retry_job
    from runner.runs.planning import check_retry

    workspace.check_output()
    store = workspace.open_store()
    try:
        row = find_job(store, job)
        by_batch = send.by_batch(stored_transport(row))
        check_detach(send, by_batch)
        price = stored_price(row)
        sending = check_retry(
            row,
            store,
            price,
            include_blocked=include_blocked,
            simulated=send.simulated,
            batch_price=stored_batch_price(row) if by_batch else None,
        )
        if not sending.to_send:
            return idle_report(store, row, workspace, sending, price)
        with open_endpoint(send) as endpoint:  # no key: said before "sending"
            if announce is not None:
                announce(sending)
            return _send(
                store,
                workspace,
                send,
                progress,
                sending,
                lambda on_progress, live: retry_job(
                    row,
                    workspace=workspace,
                    store=store,
                    endpoint=endpoint,
                    price=price,
                    include_blocked=include_blocked,
                    send=send,
                    on_progress=on_progress,
                    warn=warn,
                    live=live,
                ),
            )
    finally:
        store.close()


def cancel(
    job: str,
    *,
    workspace: Workspace,
    send: SendOptions = _DEFAULT_SEND,
    progress: ProgressDisplay | None = None,
) -> RunReport:
    """Cancel a job's live Batch API batches (SPEC 7); what they finished is
    collected, the rest of their items go back to pending."""
    from runner.runs.endpoint import open_endpoint
    from runner.runs.execution import cancel_job

    if send.simulated:
        raise UsageError(
            "--simulate has no batches to cancel: each --simulate command's batches "
            "end with it"
        )
    workspace.check_output()
    store = workspace.open_store()
    try:
        row = find_job(store, job)
        with open_endpoint(send) as endpoint:
            return _send(
                store,
                workspace,
                replace(send, review=False),
                progress,
                None,
                lambda on_progress, _: cancel_job(
                    row,
                    workspace=workspace,
                    store=store,
                    endpoint=endpoint,
                    on_progress=on_progress,
                ),
            )
    finally:
        store.close()


def check_detach(send: SendOptions, by_batch: bool) -> None:
    """--detach only with the Batch API, and never with --simulate (whose API ends
    with the command)."""
    if not send.detach:
        return
    if not by_batch:
        raise UsageError(
            "--detach returns once batches exist: use it with --batch (or "
            "`transport: batch` in the job file)"
        )
    if send.simulated:
        raise UsageError(
            "--simulate --detach cannot work: the simulated API lives only as long "
            "as the command, so its batches would never be collected; drop --detach"
        )


def preview(
    job_file: Path, *, workspace: Workspace, batch: bool | None = None
) -> PlanPreview:
    """The job's grid compared with the store; sends and writes nothing. `batch`
    (None: as the job file says) adds the Batch API's price."""
    from runner.plan import check_grid_size
    from runner.runs.planning import preview_spec
    from runner.spec import load_job

    spec = load_job(job_file)
    check_grid_size(spec)
    store = workspace.store_to_read()  # None: not there yet, and not made
    try:
        return preview_spec(spec, store, workspace, batch)
    finally:
        if store is not None:
            store.close()


def status(job: str, *, workspace: Workspace, by: Sequence[str] = ()) -> StatusReport:
    """A job's status, priced; `job` is a job name or a job file."""
    # Without `by`, read the SQLite file directly: no SQLAlchemy import to wait for.
    report = None if by else quick_status(workspace, job)
    if report is None:
        store = workspace.open_store()
        try:
            report = read_status(store, find_job(store, job), by)
        finally:
            store.close()
    return report


def review(job: str, *, workspace: Workspace) -> ReviewReport:
    """(Re)build a stored job's gallery, thumbnails and contact sheets."""
    from runner.review import build_review

    workspace.check_output()
    store = workspace.open_store()
    try:
        row = find_job(store, job)
        built = build_review(store, row, workspace.job_folder(row.name))
    finally:
        store.close()
    return ReviewReport(
        job=row.name,
        index=built.index,
        contact_sheets=built.contact_sheets,
        thumbnails=built.thumbnails,
        seconds=built.seconds,
    )


def list_jobs(*, workspace: Workspace) -> JobList:
    """The jobs in the store with their counts."""
    store = workspace.open_store()
    try:
        return JobList(workspace.output_root, store.list_jobs())
    finally:
        store.close()


def _send(
    store: Store,
    workspace: Workspace,
    send: SendOptions,
    progress: ProgressDisplay | None,
    sending: Sending | None,
    run: Callable[[ProgressCallback | None, LiveReview | None], Awaitable[RunReport]],
) -> RunReport:
    """`run` with the progress display open, then the gallery step; the gallery
    is kept up to date while the run goes on (`LiveReview`) unless --no-review."""
    import anyio

    from runner.review.live import LiveReview

    live = LiveReview() if send.review else None
    try:
        with nullcontext() if progress is None else progress() as on_progress:
            report = replace(anyio.run(run, on_progress, live), sending=sending)
        return report if live is None else _with_gallery(store, report, workspace, live)
    finally:
        if live is not None:
            live.close()


def _with_gallery(
    store: Store, report: RunReport, workspace: Workspace, live: LiveReview
) -> RunReport:
    """Bring the gallery up to date after a run, whatever the job's size; a
    failure here never hides the run's result."""
    step = GalleryStep(items=sum(report.status.counts.values()))
    try:
        job = store.get_job(report.job)
        if job is None:
            return report
        built = live.finish(store, job, workspace.job_folder(job.name))
    # Anything at all (a store error, Pillow on a damaged image, a bug, Ctrl-C while
    # thumbnails are made): the run's summary and exit code must still come out,
    # with this as a warning line.
    except (Exception, KeyboardInterrupt) as exc:
        return replace(report, gallery=replace(step, error=_gallery_error(exc)))
    during = built.during_run
    return replace(
        report,
        gallery=replace(
            step,
            index=built.index,
            thumbnails_during_run=during.get("thumbnails", 0),
            thumbnails_at_end=built.thumbnails_made - during.get("thumbnails", 0),
            sheet_pages_during_run=during.get("sheet_pages", 0),
            seconds=built.seconds,
        ),
    )


def _gallery_error(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, RunnerError):
        return exc.message
    if isinstance(exc, OSError):
        return str(exc)  # "[Errno 28] No space left on device" says it all
    detail = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
