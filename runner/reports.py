"""What the CLI renders: the reports the runs layer returns, and their `--json` data.

Owns: one frozen dataclass per answer (plan preview, confirmation question, status,
run, gallery step, review, job list), each with `as_dict()` for `--json`. Pure: no
I/O and no decisions. Imports neither the store nor the scheduler: the CLI imports
this module (`runner status` must start fast); the scheduler's progress and
result are typed by the annotation-only protocols below.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from runner import pricing
from runner.store import STATUSES

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path
    from typing import Protocol

    from runner.plan import Item, Plan
    from runner.spec import JobSpec
    from runner.store import JobSummary, Spend, Status

    # Only annotations need these: the scheduler's Progress and RunResult fit them.
    class RunProgress(Protocol):
        """A progress update of a run in flight (the scheduler's `Progress`)."""

        @property
        def total(self) -> int: ...
        @property
        def succeeded(self) -> int: ...
        @property
        def failed(self) -> int: ...
        @property
        def blocked(self) -> int: ...
        @property
        def running(self) -> int: ...
        @property
        def requests(self) -> int: ...
        @property
        def retries(self) -> int: ...
        @property
        def tokens(self) -> int: ...
        @property
        def limit(self) -> int: ...
        @property
        def concurrency(self) -> int: ...
        @property
        def elapsed(self) -> float: ...
        @property
        def stopping(self) -> str | None: ...
        @property
        def finished(self) -> int: ...

    class RunOutcome(Protocol):
        """How a run ended (the scheduler's `RunResult`)."""

        @property
        def progress(self) -> RunProgress: ...
        @property
        def stopped(self) -> str | None: ...
        @property
        def stopped_status(self) -> int | None: ...
        @property
        def interrupted(self) -> bool: ...
        @property
        def budget_stop(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class PlanPreview:
    spec: JobSpec
    plan: Plan
    stored: dict[str, int]  # planned items already in the store, by status
    new: int  # planned items the store has never seen
    to_send: tuple[Item, ...]  # new, pending, left running or simulated
    price: pricing.Price | None
    stale: int = 0  # stored items this job file no longer has
    other_file: str | None = None  # another existing job file made this job

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
            "stale": self.stale,
            "warnings": [*self.spec.warnings, *self.notes],
        }

    @property
    def notes(self) -> list[str]:
        """What a submit of this file would also do: take over a job name, leave
        stale items out."""
        notes = []
        if self.other_file is not None:
            notes.append(
                f"job name '{self.spec.name}' belongs to a job made from "
                f"{self.other_file}; `runner submit` refuses it unless --take-over"
            )
        if self.stale:
            notes.append(stale_note(self.spec.name, self.stale))
        return notes


def stale_note(job: str, stale: int) -> str:
    """What stale items are and how to remove them."""
    return (
        f"{stale:,} stored item(s) of {job} are no longer in the job file; they are "
        f"left out of its counts (`runner prune {job}` removes them)"
    )


@dataclass(frozen=True, slots=True)
class Confirmation:
    """Why a submit wants a yes before sending: a grid over `max_items` requests,
    or (`max_items` None) an estimate over the cost threshold."""

    job: str
    to_send: int
    cost_usd: float | None
    max_items: int | None = None

    @property
    def summary(self) -> str:
        """The question without its ending: the CLI adds ". Send them?", an
        error off a terminal adds what to do instead."""
        if self.max_items is not None:
            return (
                f"{self.job} would send {self.to_send:,} requests (more than "
                f"{self.max_items:,}); check the grid with `runner plan`"
            )
        return (
            f"{self.job}: {self.to_send:,} new requests, estimated "
            f"${self.cost_usd or 0:,.2f} (prices as of {pricing.PRICES_AS_OF})"
        )


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
            # "simulated": done by --simulate only; never part of "succeeded", of
            # usage, requests or cost (SPEC 5)
            "counts": s.counts,
            "total": sum(s.counts.values()),
            "stale": s.stale,
            "usage": s.usage,
            "requests": s.requests,
            "images": s.spend.images,
            # of the items the job file has now: stale items are left out
            "attempts_per_success": (
                round(s.current_requests / succeeded, 3) if succeeded else None
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
class GalleryStep:
    """The gallery after a run: built (`index`), skipped because the job has more
    than `limit` items, or failed (`error`; a failure never hides the run)."""

    items: int
    limit: int
    index: Path | None = None
    error: str | None = None

    @property
    def skipped(self) -> bool:
        return self.index is None and self.error is None


@dataclass(frozen=True, slots=True)
class RunReport:
    job: str
    result: RunOutcome
    status: StatusReport
    manifest: Path
    new_items: int  # items the job file added to the stored plan
    recovered: int  # items a dead run had left `running`
    requeued: int  # items `retry` put back to pending
    gallery: GalleryStep | None = None  # None: not asked for (--no-review)

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
        # a simulated run's successes are `simulated`
        done = counts["succeeded"] + counts["simulated"]
        return 0 if done == sum(counts.values()) else 1

    def as_dict(self) -> dict[str, Any]:
        """The job's status and how the run ended."""
        data = self.status.as_dict()
        data.update(
            exit_code=self.exit_code,
            stopped=self.result.stopped,
            interrupted=self.result.interrupted,
            manifest=str(self.manifest),
            new_items=self.new_items,
            recovered=self.recovered,
        )
        return data


@dataclass(frozen=True, slots=True)
class ReviewReport:
    """What `runner review` built in the job folder."""

    job: str
    index: Path
    contact_sheets: tuple[Path, ...]
    thumbnails: int
    seconds: Mapping[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "index": str(self.index),
            "contact_sheets": [str(p) for p in self.contact_sheets],
            "thumbnails": self.thumbnails,
            "seconds": dict(self.seconds),
        }


@dataclass(frozen=True, slots=True)
class RemovalQuestion:
    """What `runner rm` (`what` "job") or `runner prune` ("stale") is about to
    remove; `images_in`: the job folder whose images go too."""

    job: str
    what: str
    items: int
    images_in: Path | None

    @property
    def summary(self) -> str:
        files = (
            f", with their images in {self.images_in}"
            if self.images_in is not None
            else " (image files are kept; --images removes them)"
        )
        if self.what == "job":
            return f"remove job {self.job} and its {self.items:,} item(s){files}"
        return f"remove {self.items:,} stale item(s) of {self.job}{files}"


@dataclass(frozen=True, slots=True)
class Removal:
    """What `runner rm` or `runner prune` removed."""

    job: str
    what: str  # "job" or "stale"
    items: int
    attempts: int
    images: int  # image files deleted

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class JobList:
    """The jobs in one store, by name."""

    output: Path  # the results root, as given
    jobs: Sequence[JobSummary]

    def as_dict(self) -> list[dict[str, Any]]:
        return [
            {
                "job": s.name,
                "file": s.job_path,
                "counts": s.counts,
                "updated_at": s.updated_at,
            }
            for s in self.jobs
        ]
