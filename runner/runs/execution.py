"""Library entry points the CLI calls: plan preview, submit, retry, status, list.

Owns: wiring spec -> plan -> store -> scheduler -> outputs for one command, the job
lease around a run, recovery of items a dead run left behind, and the manifest rewrite
after every run (also after Ctrl-C). Must not print, read the environment or exit.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner import outputs, pricing, reader
from runner.errors import OutputError, UsageError
from runner.records import STATUSES

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from runner import client
    from runner.plan import Item, Plan
    from runner.records import JobRow, Spend, Status
    from runner.scheduler import ProgressCallback, RunResult, RunSettings
    from runner.spec import JobSpec
    from runner.store import Store, SyncResult, WorkItem

# The store (SQLAlchemy), the sending side (anyio, httpx, scheduler) and the
# job-file side (YAML, Pillow) are imported inside the functions that use them:
# `runner list` then starts in about two thirds of the time, and `runner status`
# (through `quick_status`, which reads with sqlite3) imports none of them.

JOB_FILE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class Workspace:
    """Where results and the store live (`--output`, `--db`)."""

    output_root: Path
    db_url: str | None = None

    def open_store(self) -> Store:
        from runner.store import Store

        return Store.for_output(self.output_root, self.db_url)

    def job_folder(self, name: str) -> Path:
        return outputs.job_dir(self.output_root, name)


@dataclass(frozen=True, slots=True)
class PlanPreview:
    spec: JobSpec
    plan: Plan
    stored: dict[str, int]  # planned items already in the store, by status
    new: int  # planned items the store has never seen
    to_send: tuple[Item, ...]  # new, pending or left running
    price: pricing.Price | None

    def estimate(self, items: Sequence[Item]) -> dict[str, Any]:
        """Expected tokens and USD if every item succeeds on its first try."""
        tokens = {
            "promptTokenCount": 0,
            "candidatesTokenCount": 0,
            "totalTokenCount": 0,
        }
        usd = 0.0
        for item in items:
            request = item.request
            refs = len(request.references)
            usage = pricing.estimate_tokens(request.text, refs, request.image_size)
            for name in tokens:
                tokens[name] += usage[name]
            if self.price is not None:
                usd += pricing.estimate_cost(
                    request.text, refs, request.image_size, self.price
                )
        return {
            "requests": len(items),
            "tokens": tokens,
            "cost_usd": None if self.price is None else round(usd, 4),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.spec.name,
            "file": str(self.spec.path),
            "model": self.spec.model,
            "items": len(self.plan.items),
            "new": self.new,
            "stored": self.stored,
            "to_send": len(self.to_send),
            "duplicates_dropped": self.plan.duplicates,
            "axes": self.plan.axis_counts(),
            "estimate": {
                "to_send": self.estimate(self.to_send),
                "whole_plan": self.estimate(self.plan.items),
                "prices_as_of": pricing.PRICES_AS_OF,
                "source": pricing.PRICES_SOURCE,
            },
            "budget": asdict(self.spec.budget),
            "warnings": list(self.spec.warnings),
        }


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A job's status with its spend priced (None where the model has no price)."""

    status: Status
    price: pricing.Price | None

    @property
    def counts(self) -> dict[str, int]:
        return self.status.counts

    def cost(self, spend: Spend) -> dict[str, float] | None:
        if self.price is None:
            return None
        billed, unknown = pricing.spend_cost(spend.tokens, spend.unpriced, self.price)
        return {
            "billed_usd": round(billed, 6),
            "possibly_billed_usd": round(unknown, 6),
            "total_usd": round(billed + unknown, 6),
        }

    def as_dict(self) -> dict[str, Any]:
        s = self.status
        succeeded = s.counts["succeeded"]
        return {
            "job": s.job,
            "counts": s.counts,
            "total": sum(s.counts.values()),
            "usage": s.usage,
            "requests": s.requests,
            "images": s.spend.images,
            "attempts_per_success": (
                round(s.spend.requests / succeeded, 3) if succeeded else None
            ),
            "cost": self.cost(s.spend),
            "price": None
            if self.price is None
            else {
                **asdict(self.price),
                "currency": "USD",
                "as_of": pricing.PRICES_AS_OF,
                "source": pricing.PRICES_SOURCE,
            },
            **(
                {
                    "by": {
                        axis: {
                            value: {
                                "items": g["items"],
                                **{k: g[k] for k in STATUSES},
                                "requests": g["spend"].requests,
                                "usage": g["spend"].usage,
                                "cost": self.cost(g["spend"]),
                            }
                            for value, g in groups.items()
                        }
                        for axis, groups in s.by_axis.items()
                    }
                }
                if s.by_axis
                else {}
            ),
            "failures": s.failures,
        }


@dataclass(frozen=True, slots=True)
class RunReport:
    job: str
    result: RunResult
    status: StatusReport
    manifest: Path
    sync: SyncResult | None
    recovered: int  # items a dead run had left `running`
    requeued: int  # items `retry` put back to pending

    @property
    def exit_code(self) -> int:
        """SPEC exit codes: 130 interrupted, 3 stopped, 1 anything not succeeded."""
        if self.result.interrupted:
            return 130
        if self.result.stopped:
            return 3
        if self.result.budget_stop:
            return 1
        counts = self.status.counts
        return 0 if counts["succeeded"] == sum(counts.values()) else 1


def is_job_file(job: str) -> bool:
    return job.endswith(JOB_FILE_SUFFIXES) or Path(job).is_file()


def preview(spec: JobSpec, store: Store) -> PlanPreview:
    """Expand the job and compare with the store; sends and writes nothing."""
    from runner.plan import build_plan

    plan = build_plan(spec)
    job = store.get_job(spec.name)
    known = store.statuses_of(job, (i.key for i in plan.items)) if job else {}
    return PlanPreview(
        spec=spec,
        plan=plan,
        stored=dict(Counter(known.values())),
        new=len(plan.items) - len(known),
        to_send=tuple(
            i for i in plan.items if known.get(i.key) in (None, "pending", "running")
        ),
        price=pricing.price_for(spec.model, spec.pricing),
    )


@dataclass(frozen=True, slots=True)
class SubmitCheck:
    """What a submit would send, worked out as cheaply as the store allows."""

    plan: Plan | None  # None: the store already holds exactly this plan
    digest: str
    to_send: int
    cost_usd: float | None


def check_submit(spec: JobSpec, store: Store) -> SubmitCheck:
    """Count what a submit would send; an unchanged job file is not planned again
    (its digest matches the stored plan), so resuming a big job starts at once."""
    from runner.plan import plan_digest

    digest = plan_digest(spec)
    price = pricing.price_for(spec.model, spec.pricing)
    job = store.get_job(spec.name)
    if job is not None and store.plan_digest(job) == digest:
        unfinished = store.unfinished(job)
        cost = None
        if price is not None:
            cost = sum(
                pricing.estimate_cost(text, refs, size, price)
                for text, refs, size in unfinished
            )
        return SubmitCheck(None, digest, len(unfinished), cost)
    full = preview(spec, store)
    estimate = full.estimate(full.to_send)
    return SubmitCheck(full.plan, digest, estimate["requests"], estimate["cost_usd"])


def find_job(store: Store, job: str) -> JobRow:
    """A job by name, or by the name a job file declares."""
    from runner.spec import load_job

    name = load_job(job).name if is_job_file(job) else job
    row = store.get_job(name)
    if row is None:
        raise UsageError(
            f"no job named '{name}' in the store {store.url}; `runner list` shows the "
            "jobs there (check --output/--db), or submit the job file first"
        )
    return row


async def submit(
    spec: JobSpec,
    *,
    workspace: Workspace,
    store: Store,
    endpoint: client.Endpoint,
    concurrency: int | None = None,
    on_progress: ProgressCallback | None = None,
    overrides: Mapping[str, Any] | None = None,
    budget_caps: Mapping[str, Any] | None = None,
    check: SubmitCheck | None = None,
) -> RunReport:
    """Plan the job, store the plan, and send every item not finished yet.

    `overrides` replaces RunSettings fields (timeouts, backoff) for this run;
    `check` is `check_submit(spec, store)` if the caller already has it.
    """
    from anyio import to_thread

    from runner.scheduler import RunSettings

    if check is None:
        check = await to_thread.run_sync(check_submit, spec, store)
    plan, digest = check.plan, check.digest
    run_settings = replace(
        RunSettings(
            concurrency=concurrency or spec.concurrency,
            max_attempts=spec.max_attempts,
            max_unknown_retries=spec.max_unknown_retries,
            rpm=spec.rpm,
            budget=replace(spec.budget, **(budget_caps or {})),
            price=pricing.price_for(spec.model, spec.pricing),
        ),
        **(overrides or {}),
    )
    folder = workspace.job_folder(spec.name)
    job = store.upsert_job(
        spec.name,
        str(spec.path),
        spec.model,
        {
            "concurrency": spec.concurrency,
            "max_attempts": spec.max_attempts,
            "max_unknown_retries": spec.max_unknown_retries,
            "rpm": spec.rpm,
            "pricing": dict(spec.pricing or {}),
            "budget": asdict(spec.budget),
        },
    )
    return await _run(
        store,
        job,
        folder,
        endpoint,
        run_settings,
        on_progress,
        command="submit",
        prepare=lambda: (
            None if plan is None else store.sync_plan(job, plan.items, digest),
            0,
        ),
    )


async def retry(
    job: JobRow,
    *,
    workspace: Workspace,
    store: Store,
    endpoint: client.Endpoint,
    include_blocked: bool = False,
    concurrency: int | None = None,
    on_progress: ProgressCallback | None = None,
    overrides: Mapping[str, Any] | None = None,
    budget_caps: Mapping[str, Any] | None = None,
) -> RunReport:
    """Send failed items (and blocked ones if asked) again, with fresh tries."""
    from runner.scheduler import RunSettings
    from runner.spec import Budget

    saved = job.settings
    run_settings = replace(
        RunSettings(
            concurrency=concurrency or int(saved.get("concurrency") or 8),
            max_attempts=int(saved.get("max_attempts") or 5),
            max_unknown_retries=int(saved.get("max_unknown_retries", 1)),
            rpm=saved.get("rpm"),
            budget=Budget(**{**saved.get("budget", {}), **(budget_caps or {})}),
            price=pricing.price_for(job.model or "", saved.get("pricing")),
        ),
        **(overrides or {}),
    )
    statuses = ("failed", "blocked") if include_blocked else ("failed",)
    return await _run(
        store,
        job,
        workspace.job_folder(job.name),
        endpoint,
        run_settings,
        on_progress,
        command="retry",
        prepare=lambda: (None, store.requeue(job, statuses)),
    )


def status(store: Store, job: JobRow, by: Sequence[str] = ()) -> StatusReport:
    """Counts, usage, requests and spend, in total and per value of each axis in
    `by` (prompt, aspect_ratio, image_size, references)."""
    return _priced(job, store.status(job, by))


def quick_status(workspace: Workspace, job: str) -> StatusReport | None:
    """`status` of the job named `job` (no `by`), read from the SQLite file without
    SQLAlchemy; None wherever that does not apply (another database, a job file, a
    missing file or job, another schema): then open the store and call `status`,
    which also says what is wrong."""
    path = reader.store_file(workspace.output_root, workspace.db_url)
    if path is None or is_job_file(job):
        return None
    try:
        with reader.StoreReader(path) as store:
            row = store.job(job)
            return None if row is None else _priced(row, store.status(row))
    except reader.Unreadable:
        return None


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
    prepare: Callable[[], tuple[SyncResult | None, int]],
) -> RunReport:
    import anyio
    import httpx
    from anyio import to_thread

    from runner import client
    from runner.scheduler import Progress, RunResult, run_items

    owner = uuid.uuid4().hex

    def start() -> tuple[int, SyncResult | None, int, list[WorkItem], int, Spend]:
        folder.mkdir(parents=True, exist_ok=True)
        store.acquire_lease(job, owner, settings.lease_ttl)
        try:
            outputs.remove_stale_temp_files(folder)
            recovered = store.recover_abandoned(job)
            sync, requeued = prepare()
            work = store.pending_items(job)
            run_id = store.start_run(job, command)
            return recovered, sync, requeued, work, run_id, store.spend(job)
        except BaseException:
            store.release_lease(job, owner)
            raise

    def wrap_up(result: RunResult) -> tuple[Path, StatusReport]:
        try:
            store.end_run(run_id, _run_outcome(result))
            return write_manifest(store, job, folder), status(store, job)
        finally:
            store.release_lease(job, owner)

    recovered, sync, requeued, work, run_id, spent = await to_thread.run_sync(start)
    settings = replace(settings, spent=spent)
    result = RunResult(progress=Progress(total=len(work)), interrupted=True)
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
            )
    finally:
        # Also after Ctrl-C: the manifest must show what finished.
        with anyio.CancelScope(shield=True):
            manifest, final = await to_thread.run_sync(wrap_up, result)
    return RunReport(
        job=job.name,
        result=result,
        status=final,
        manifest=manifest,
        sync=sync,
        recovered=recovered,
        requeued=requeued,
    )


def _priced(job: JobRow, status: Status) -> StatusReport:
    return StatusReport(
        status, pricing.price_for(job.model or "", job.settings.get("pricing"))
    )


def _run_outcome(result: RunResult) -> str:
    if result.interrupted:
        return "interrupted"
    return "stopped" if result.stopped else "finished"
