"""What a submit would send: the job's plan compared with the store.

Owns: the plan preview (`runner plan`) and the cheaper check a submit starts with
(an unchanged job file is not planned again). Sends and writes nothing; the price
is handed in, looked up once by the caller.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner import pricing
from runner.reports import PlanPreview
from runner.runs.settings import spec_price
from runner.runs.workspace import owner_conflict

if TYPE_CHECKING:
    from runner.plan import Plan
    from runner.spec import JobSpec
    from runner.store import Store


@dataclass(frozen=True, slots=True)
class SubmitCheck:
    """What a submit would send, worked out as cheaply as the store allows."""

    plan: Plan | None  # None: the store already holds exactly this plan
    digest: str
    to_send: int
    cost_usd: float | None
    price: pricing.Price | None  # the job's, which the estimate used
    stale: int = 0  # stored items the job file no longer has


def preview_spec(spec: JobSpec, store: Store) -> PlanPreview:
    """Expand the job and compare with the store, as a real (not simulated)
    submit would send it; sends and writes nothing."""
    return _preview(spec, store, spec_price(spec), simulated=False)


def check_submit(
    spec: JobSpec, store: Store, price: pricing.Price | None, simulated: bool = False
) -> SubmitCheck:
    """Count what a submit would send; an unchanged job file is not planned again
    (its digest matches the stored plan), so resuming a big job starts at once.
    A real submit sends the simulated successes too (SPEC 5)."""
    from runner.plan import plan_digest

    digest = plan_digest(spec)
    job = store.get_job(spec.name)
    if job is not None and store.plan_digest(job) == digest:
        unfinished = store.unfinished(job, _to_send(simulated))
        cost = None
        if price is not None:
            cost = sum(
                pricing.estimate_cost(text, refs, size, price)
                for text, refs, size in unfinished
            )
        stale = store.stale_count(job)
        return SubmitCheck(None, digest, len(unfinished), cost, price, stale)
    full = _preview(spec, store, price, simulated=simulated)
    estimate = full.estimate(full.to_send)
    return SubmitCheck(
        full.plan,
        digest,
        estimate["requests"],
        estimate["cost_usd"],
        price,
        full.stale,
    )


def _to_send(simulated: bool) -> tuple[str, ...]:
    """The stored statuses of items a submit sends."""
    return ("pending", "running") if simulated else ("pending", "running", "simulated")


def _preview(
    spec: JobSpec, store: Store, price: pricing.Price | None, *, simulated: bool
) -> PlanPreview:
    from runner.plan import build_plan

    plan = build_plan(spec)
    job = store.get_job(spec.name)
    known = store.statuses_of(job, (i.key for i in plan.items)) if job else {}
    sending = (None, *_to_send(simulated))
    return PlanPreview(
        spec=spec,
        plan=plan,
        stored=dict(Counter(known.values())),
        new=len(plan.items) - len(known),
        to_send=tuple(i for i in plan.items if known.get(i.key) in sending),
        price=price,
        stale=store.item_count(job) - len(known) if job else 0,
        other_file=owner_conflict(job, spec),
    )
