"""What a submit would send: the job's plan compared with the store.

Owns: the plan preview (`runner plan`) and the cheaper check a submit starts with
(an unchanged job file is not planned again). Sends and writes nothing; the price
is handed in, looked up once by the caller.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runner import outputs
from runner.errors import JobSpecError, NoSpaceError
from runner.reports import PlanPreview, Sending, estimate_requests
from runner.runs.parents import Parents, find_parents
from runner.runs.settings import spec_batch_price, spec_price
from runner.runs.workspace import owner_conflict

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from runner import pricing
    from runner.plan import Plan
    from runner.runs.workspace import Workspace
    from runner.spec import JobSpec
    from runner.store import JobRow, RecordedUsage, Store, UsageKey


@dataclass(frozen=True, slots=True)
class SubmitCheck:
    """What a submit would send, worked out as cheaply as the store allows."""

    plan: Plan | None  # None: the store already holds exactly this plan
    digest: str
    to_send: int
    cost_usd: float | None
    price: pricing.Price | None  # the job's, which the estimate used
    recorded_answers: int = 0  # the estimate learnt from this many answers
    bytes: int = 0  # what the images may take (outputs.image_bytes, one each)
    stale: int = 0  # stored items the job file no longer has
    items: int = 0  # the job file's items
    stored: Mapping[str, int] = field(default_factory=dict)  # of them, by status
    new: int = 0  # of them, the ones the store has never seen
    batch_cost_usd: float | None = None  # sent through the Batch API (SPEC 7)

    def sending(self, job: str, simulated: bool, *, by_batch: bool = False) -> Sending:
        """What the submit is about to send (through the Batch API if `by_batch`),
        to say so before it does."""
        return Sending(
            job=job,
            command="submit",
            items=self.items,
            stored=self.stored,
            new=self.new,
            stale=self.stale,
            sends=_to_send(simulated),
            to_send=self.to_send,
            cost_usd=self.cost_usd,
            simulated=simulated,
            recorded_answers=self.recorded_answers,
            batch_cost_usd=self.batch_cost_usd,
            by_batch=by_batch,
        )

    notes: tuple[str, ...] = ()  # about a derived job's parents


def preview_spec(
    spec: JobSpec,
    store: Store | None,
    workspace: Workspace | None = None,
    batch: bool | None = None,
) -> PlanPreview:
    """Expand the job and compare with the store (None: there is none yet, so
    nothing is stored), as a real (not simulated) submit would send it; sends and
    writes nothing. A derived job's parents are found in `workspace`. `batch`
    (None: the job file's `transport`) shows the Batch API's price too."""
    if batch is None:
        batch = spec.transport == "batch"
    parents = _parents(spec, store, workspace, simulated=False)
    return _preview(
        spec,
        store,
        spec_price(spec),
        parents,
        simulated=False,
        learn=True,
        batch_price=spec_batch_price(spec) if batch else None,
    )


def check_submit(
    spec: JobSpec,
    store: Store,
    price: pricing.Price | None,
    simulated: bool = False,
    *,
    learn: bool = True,
    workspace: Workspace | None = None,
    batch_price: pricing.Price | None = None,
) -> SubmitCheck:
    """Count what a submit would send; an unchanged job file is not planned again
    (its digest matches the stored plan), so resuming a big job starts at once.
    A real submit sends the simulated successes too (SPEC 5). `learn`: estimate
    the cost from the job's recorded answers; a submit whose estimate nobody will
    read (`--yes`) skips that read of every attempt (0.3 s at 300,000). A derived
    job's parents are found (in `workspace`) every time: they are part of the
    digest."""
    from runner.plan import plan_digest

    parents = _parents(spec, store, workspace, simulated=simulated)
    digest = plan_digest(spec, parents.parents)
    job = store.get_job(spec.name)
    if job is not None and store.plan_digest(job) == digest:
        estimate = estimate_requests(
            (
                (spec.model, text, refs, size)
                for text, refs, size in store.unfinished(job, _to_send(simulated))
            ),
            price,
            store.recorded_usage(job) if learn else {},
            batch_price,
        )
        plan = None
        stale = store.stale_count(job)
        stored = {k: n for k, n in store.counts(job).items() if n}
        new = 0  # the stored plan is this one
    else:
        full = _preview(
            spec,
            store,
            price,
            parents,
            simulated=simulated,
            learn=learn,
            batch_price=batch_price,
        )
        estimate = full.estimate(full.to_send)
        plan = full.plan
        stale = full.stale
        stored, new = full.stored, full.new
    return SubmitCheck(
        plan,
        digest,
        estimate["requests"],
        estimate["cost_usd"],
        price,
        estimate["recorded_answers"],
        estimate["bytes"],
        stale,
        items=sum(stored.values()) + new,
        stored=stored,
        new=new,
        notes=parents.notes,
        batch_cost_usd=estimate.get("batch_cost_usd"),
    )


def check_retry(
    job: JobRow,
    store: Store,
    price: pricing.Price | None,
    *,
    include_blocked: bool,
    simulated: bool,
    batch_price: pricing.Price | None = None,
) -> Sending:
    """What a retry would send: the failed items (and blocked ones if asked) and
    whatever a stopped run left pending; with `batch_price`, also its cost
    through the Batch API."""
    failed = ("failed", "blocked") if include_blocked else ("failed",)
    sends = (*failed, "pending", "running")
    model = job.model or ""
    estimate = estimate_requests(
        (
            (model, text, refs, size)
            for text, refs, size in store.unfinished(job, sends)
        ),
        price,
        store.recorded_usage(job),
        batch_price,
    )
    stored = {k: n for k, n in store.counts(job).items() if n}
    return Sending(
        job=job.name,
        command="retry",
        items=sum(stored.values()),
        stored=stored,
        new=0,
        stale=store.stale_count(job),
        sends=sends,
        to_send=estimate["requests"],
        cost_usd=estimate["cost_usd"],
        simulated=simulated,
        recorded_answers=estimate["recorded_answers"],
        batch_cost_usd=estimate.get("batch_cost_usd"),
    )


def check_space(folder: Path, check: SubmitCheck) -> None:
    """Refuse a submit whose images would not fit in the job folder's free space
    (besides the room a run keeps free for its store and journal)."""
    free = outputs.free_bytes(folder)
    need = check.bytes + outputs.KEEP_FREE
    if check.to_send and free < need:
        raise NoSpaceError(
            f"{folder} has {outputs.describe_bytes(free)} free, "
            f"{outputs.describe_bytes(need - free)} short of the "
            f"{outputs.describe_bytes(need)} this submit may write "
            f"({check.to_send:,} image(s), up to "
            f"{outputs.describe_bytes(check.bytes)}, plus room for the store); "
            "free space, use another --output, or send fewer items"
        )


def _to_send(simulated: bool) -> tuple[str, ...]:
    """The stored statuses of items a submit sends."""
    return ("pending", "running") if simulated else ("pending", "running", "simulated")


def _parents(
    spec: JobSpec, store: Store | None, workspace: Workspace | None, *, simulated: bool
) -> Parents:
    derived = spec.derived
    if derived is None:
        return Parents()
    if workspace is None:
        raise ValueError("a derived job's parents are found in a workspace")
    if store is None:  # `plan` before any store exists: no parent job either
        raise JobSpecError(
            spec.path,
            f"from: job '{derived.job}' is not in the store (there is no store yet); "
            "submit that job first, with the same --output",
            line=derived.line,
        )
    return find_parents(spec, store, workspace, simulated=simulated)


def _preview(
    spec: JobSpec,
    store: Store | None,
    price: pricing.Price | None,
    parents: Parents,
    *,
    simulated: bool,
    learn: bool,
    batch_price: pricing.Price | None = None,
) -> PlanPreview:
    from runner.plan import build_plan

    plan = build_plan(spec, parents.parents)
    job = store.get_job(spec.name) if store is not None else None
    known: dict[str, str] = {}
    recorded: dict[UsageKey, RecordedUsage] = {}
    stale = 0
    if store is not None and job is not None:
        known = store.statuses_of(job, (i.key for i in plan.items))
        recorded = store.recorded_usage(job) if learn else {}
        stale = store.item_count(job) - len(known)
    sending = (None, *_to_send(simulated))
    return PlanPreview(
        spec=spec,
        plan=plan,
        stored=dict(Counter(known.values())),
        new=len(plan.items) - len(known),
        to_send=tuple(i for i in plan.items if known.get(i.key) in sending),
        price=price,
        recorded=recorded,
        stale=stale,
        other_file=owner_conflict(job, spec),
        parent_notes=parents.notes,
        batch_price=batch_price,
    )
