"""What the CLI renders: the reports the runs layer returns, and their `--json` data.

Owns: one frozen dataclass per answer (plan preview, confirmation question, status,
run, gallery step, review, served gallery, job list, marks set, export), each with
`as_dict()` for `--json`. Pure: no
I/O and no decisions. Imports neither the store nor the scheduler: the CLI imports
this module (`runner status` must start fast); the scheduler's progress and
result are typed by the annotation-only protocols below.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from runner import outputs, pricing
from runner.errors import RunStopped
from runner.store import STATUSES

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from pathlib import Path
    from typing import Protocol

    from runner.plan import Item, Plan
    from runner.spec import JobSpec
    from runner.store import (
        JobSummary,
        Mark,
        RecordedUsage,
        Spend,
        Status,
        UsageKey,
    )

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
        def saving(self) -> int: ...
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
        def interrupts(self) -> int: ...
        @property
        def finished(self) -> int: ...
        @property
        def batches(self) -> Sequence[BatchShown]: ...

    class BatchShown(Protocol):
        """A batch in a run's progress (the scheduler's `BatchProgress`)."""

        @property
        def name(self) -> str: ...
        @property
        def state(self) -> str: ...
        @property
        def requests(self) -> int: ...
        @property
        def done(self) -> int: ...

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
        def abandoned(self) -> int: ...
        @property
        def budget_stop(self) -> str | None: ...
        @property
        def batches_left(self) -> int: ...
        @property
        def detached(self) -> bool: ...


def estimate_requests(
    requests: Iterable[tuple[str, str, int, str | None]],
    price: pricing.Price | None,
    recorded: Mapping[UsageKey, RecordedUsage],
    batch_price: pricing.Price | None = None,
) -> dict[str, Any]:
    """Expected tokens and USD if each request (model, prompt text, reference
    count, image size) succeeds on its first try: what the job's answers used on
    average for the same model, size and reference count, where it has some
    (`recorded_answers` says how many), else the published figures. With a
    `batch_price`, also the USD through the Batch API (`batch_cost_usd`)."""
    tokens = dict.fromkeys(("promptTokenCount", "candidatesTokenCount"), 0.0)
    tokens["totalTokenCount"] = 0.0
    prices = (price, batch_price)
    usd = [0.0, 0.0]  # at each of `prices`
    count = 0
    written = 0  # bytes the images may take (one each, see outputs.image_bytes)
    size_bytes: dict[str | None, int] = {}
    learned: dict[UsageKey, tuple[dict[str, float], list[float]]] = {}
    for model, text, refs, size in requests:
        count += 1
        one = size_bytes.get(size)
        if one is None:
            one = size_bytes[size] = outputs.image_bytes(size)
        written += one
        key = (model, size, refs)
        seen = learned.get(key)
        if seen is None and (group := recorded.get(key)) is not None and group.answers:
            seen = learned[key] = (
                pricing.mean_tokens(group.tokens, group.answers),
                [
                    0.0
                    if p is None
                    else pricing.mean_cost(group.tokens, group.answers, p)
                    for p in prices
                ],
            )
        if seen is not None:
            usage, costs = seen
        else:
            usage = dict(pricing.estimate_tokens(text, refs, size))
            costs = [
                0.0 if p is None else pricing.estimate_cost(text, refs, size, p)
                for p in prices
            ]
        for name in tokens:
            tokens[name] += usage[name]
        usd[0] += costs[0]
        usd[1] += costs[1]
    estimate: dict[str, Any] = {
        "requests": count,
        "tokens": {name: round(n) for name, n in tokens.items()},
        "cost_usd": None if price is None else round(usd[0], 4),
        "recorded_answers": sum(recorded[key].answers for key in learned),
        "bytes": written,
    }
    if batch_price is not None:
        estimate["batch_cost_usd"] = round(usd[1], 4)
    return estimate


@dataclass(frozen=True, slots=True)
class PlanPreview:
    spec: JobSpec
    plan: Plan
    stored: dict[str, int]  # planned items already in the store, by status
    new: int  # planned items the store has never seen
    to_send: tuple[Item, ...]  # new, pending, left running or simulated
    price: pricing.Price | None
    # What the job's answers used, per model/size/references: estimates learn it.
    recorded: Mapping[UsageKey, RecordedUsage] = field(default_factory=dict)
    stale: int = 0  # stored items this job file no longer has
    other_file: str | None = None  # another existing job file made this job
    parent_notes: tuple[str, ...] = ()  # a derived job's: what was left out
    # Set (plan --batch, or `transport: batch`): the Batch API's price, estimates
    # show both (SPEC 7).
    batch_price: pricing.Price | None = None

    def estimate(self, items: Sequence[Item]) -> dict[str, Any]:
        """Expected tokens and USD if every item succeeds on its first try (and
        through the Batch API, with a `batch_price`)."""
        return estimate_requests(
            (
                (
                    i.request.model,
                    i.request.text,
                    len(i.request.inline_files),
                    i.request.image_size,
                )
                for i in items
            ),
            self.price,
            self.recorded,
            self.batch_price,
        )

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
            "derived": self.derived(),
        }

    def derived(self) -> dict[str, Any] | None:
        """A derived job's parent axis: where the parents come from, how many, and
        how many of them have cells to send (new parents, say)."""
        derived = self.spec.derived
        if derived is None:
            return None
        names = {i.parent.name: None for i in self.plan.items if i.parent}
        sending = {i.parent.name for i in self.to_send if i.parent}
        marked = derived.marked
        return {
            "from": derived.job,
            "mode": derived.mode,
            "marked": marked if isinstance(marked, str) else list(marked),
            "parents": len(names),
            "parents_to_send": len(sending),
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
        return [*notes, *self.parent_notes]


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
    recorded_answers: int = 0  # the estimate learnt from this many answers

    @property
    def summary(self) -> str:
        """The question without its ending: the CLI adds ". Send them?", an
        error off a terminal adds what to do instead."""
        if self.max_items is not None:
            return (
                f"{self.job} would send {self.to_send:,} requests (more than "
                f"{self.max_items:,}); check the grid with `runner plan`"
            )
        basis = ""
        if self.recorded_answers:
            basis = f" from {self.recorded_answers:,} recorded answers"
        return (
            f"{self.job}: {self.to_send:,} new requests, estimated "
            f"${self.cost_usd or 0:,.2f}{basis} (prices as of {pricing.PRICES_AS_OF})"
        )


@dataclass(frozen=True, slots=True)
class Sending:
    """What a submit or retry is about to send, said before it sends (with --json,
    in the run's report instead)."""

    job: str
    command: str  # "submit" or "retry"
    items: int  # the job file's items (retry: the stored job's active items)
    stored: Mapping[str, int]  # of those, the ones in the store, by status
    new: int  # of those, the ones the store has never seen
    stale: int  # stored items the job file no longer has (never sent)
    sends: tuple[str, ...]  # the stored statuses this command sends (and new ones)
    to_send: int
    # If every request succeeds at its first try; None: the model has no price.
    cost_usd: float | None
    simulated: bool  # --simulate: what it would cost, never spent (SPEC 5)
    recorded_answers: int = 0  # the estimate learnt from this many answers
    # The same requests through the Batch API (SPEC 7): set when they go that way.
    batch_cost_usd: float | None = None
    by_batch: bool = False  # sent through the Batch API (--batch, `transport: batch`)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stored"] = dict(self.stored)
        data["sends"] = list(self.sends)
        return data


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A job's status with its spend priced (None where the model has no price)."""

    status: Status
    price: pricing.Price | None
    batch_price: pricing.Price | None = None  # of what went by batch (SPEC 7)

    @property
    def counts(self) -> dict[str, int]:
        return self.status.counts

    def cost(self, spend: Spend) -> dict[str, float] | None:
        if self.price is None:
            return None
        batch = None
        if self.batch_price is not None and spend.batch_tokens:
            batch = (spend.batch_tokens, spend.batch_unpriced, self.batch_price)
        billed, unknown = pricing.spend_cost(
            spend.tokens, spend.unpriced, self.price, batch
        )
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
            # images of the job's items by mark, and with a note (SPEC 6)
            "marks": s.marks,
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
                "batch": None if self.batch_price is None else asdict(self.batch_price),
                "currency": "USD",
                "as_of": pricing.PRICES_AS_OF,
                "source": pricing.PRICES_SOURCE,
            },
            # requests sent through the Batch API, of `requests.sent` (SPEC 7)
            "batch_requests": s.spend.batch_requests,
            # the job's batches as last seen: status never asks the API
            "batches": [batch.as_dict() for batch in s.batches],
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
    """The gallery after a run: brought up to date (`index`), or failed (`error`;
    a failure never hides the run); thumbnails made while the run went on and at
    its end, and the wall time of the end's stages."""

    items: int
    index: Path | None = None
    error: str | None = None
    thumbnails_during_run: int = 0
    thumbnails_at_end: int = 0
    sheet_pages_during_run: int = 0  # contact-sheet pages drawn while it went on
    seconds: Mapping[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": None if self.index is None else str(self.index),
            "error": self.error,
            "thumbnails_during_run": self.thumbnails_during_run,
            "thumbnails_at_end": self.thumbnails_at_end,
            "sheet_pages_during_run": self.sheet_pages_during_run,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


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
    replayed: int = 0  # answers a stopped run paid for, taken from its journal
    adopted: int = 0  # items whose images a stopped run wrote but never recorded
    sending: Sending | None = None  # what it set out to send

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
        # a simulated run's successes are `simulated`; items in live batches are
        # neither failed nor left behind: a later submit collects them (SPEC 7)
        done = counts["succeeded"] + counts["simulated"] + counts["in_batch"]
        return 0 if done == sum(counts.values()) else 1

    @property
    def stop(self) -> RunStopped | None:
        """The error a run stopped by an upstream problem ends with (exit 3)."""
        if not self.result.stopped:
            return None
        return RunStopped(self.result.stopped, status=self.result.stopped_status)

    def as_dict(self) -> dict[str, Any]:
        """The job's status and how the run ended (with `error` when it stopped)."""
        data = self.status.as_dict()
        data.update(
            exit_code=self.exit_code,
            stopped=self.result.stopped,
            interrupted=self.result.interrupted,
            abandoned=self.result.abandoned,
            batches_left=self.result.batches_left,
            detached=self.result.detached,
            manifest=str(self.manifest),
            new_items=self.new_items,
            recovered=self.recovered,
            replayed=self.replayed,
            adopted=self.adopted,
            sending=None if self.sending is None else self.sending.as_dict(),
        )
        if self.gallery is not None:
            data["gallery"] = self.gallery.as_dict()
        if (stop := self.stop) is not None:
            data["error"] = stop.as_dict()
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
class Serving:
    """`runner review --serve` is answering: the job's page at `url`, and the job
    folders it serves files of (the job's, then its parents' and children's)."""

    job: str
    url: str
    folders: tuple[Path, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "url": self.url,
            "folders": [str(p) for p in self.folders],
        }


@dataclass(frozen=True, slots=True)
class ServeReport:
    """How a served gallery ended: `changes` marks and notes written while it
    served, and the page rebuilt to show them (None: nothing changed)."""

    job: str
    changes: int
    index: Path | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "changes": self.changes,
            "index": None if self.index is None else str(self.index),
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
    marks: int = 0  # marks on the removed items' images
    kept: int = 0  # stale items prune left because an image of theirs is marked
    waiting: int = 0  # stale items prune left: waiting in a live batch

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


@dataclass(frozen=True, slots=True)
class MarkReport:
    """What `runner mark` did: `change` is star, reject, clear or note; `marks`
    are the named images' marks now (mark and note None where cleared)."""

    job: str
    change: str
    marks: Sequence[Mark]
    manifest: Path | None  # rewritten with the marks; None: the job has no folder

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "change": self.change,
            "images": [
                {"key": m.key, "image": m.image, **m.as_dict()} for m in self.marks
            ],
            "manifest": None if self.manifest is None else str(self.manifest),
        }


@dataclass(frozen=True, slots=True)
class ExportedImage:
    """One image `runner export` chose: its copy and sidecar in DEST."""

    image: str  # in the job folder
    file: Path  # the copy
    sidecar: Path
    copied: bool  # False: an identical copy was there already
    sidecar_written: bool  # False: an identical sidecar was there already


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What `runner export` copied; `marked`: the mark filter (None: every image);
    `missing`: chosen images whose files are gone from the job folder."""

    job: str
    dest: Path
    marked: str | None
    exported: Sequence[ExportedImage]
    missing: Sequence[str] = ()

    @property
    def exit_code(self) -> int:
        """1 when a chosen image's file was missing, else 0."""
        return 1 if self.missing else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "dest": str(self.dest),
            "marked": self.marked,
            "copied": sum(e.copied for e in self.exported),
            "unchanged": sum(not e.copied for e in self.exported),
            # sidecars of images already there, rewritten: their mark or note changed
            "sidecars_updated": sum(
                e.sidecar_written and not e.copied for e in self.exported
            ),
            "images": [
                {
                    "image": e.image,
                    "file": str(e.file),
                    "sidecar": str(e.sidecar),
                    "copied": e.copied,
                    "sidecar_written": e.sidecar_written,
                }
                for e in self.exported
            ],
            "missing": list(self.missing),
        }


@dataclass(frozen=True, slots=True)
class Starter:
    """What `runner init` wrote: a job file, its JSON Schema and a refs/ folder."""

    job_file: Path
    schema_file: Path
    refs: Path

    def as_dict(self) -> dict[str, str]:
        return {name: str(path) for name, path in asdict(self).items()}
