"""What the store hands out, and the read queries of `runner status` as SQL text.

Owns: the plain records (`JobRow`, `Spend`, `Status`, `JobSummary`, `Mark`,
`BatchRow`), the status, counter and mark names, the running-totals rule
(`attempt_counters`), the names of the schema's migrations, and the SQL (named
`:params`) of the job lookup and the status queries with the pure functions that
turn their rows into records.
`queries` runs this SQL through SQLAlchemy, `reader` through sqlite3, so both
answer alike.
Stdlib only: must not import SQLAlchemy or open a database.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    # Runs one statement of this module with its parameters; returns its rows.
    Query = Callable[[str, Mapping[str, Any]], Iterable[Sequence[Any]]]

# "simulated": succeeded in a --simulate run; a real submit sends it again (SPEC 5).
# "in_batch": in a live Batch API batch (SPEC 7): never reclaimed by lease
# recovery, never sent by an interactive run; its batch's result decides it.
STATUSES = (
    "pending", "running", "succeeded", "simulated", "failed", "blocked", "in_batch",
)  # fmt: skip
TOKEN_COLUMNS = (
    "prompt_tokens", "candidates_tokens", "thoughts_tokens", "image_tokens",
    "total_tokens",
)  # fmt: skip
COUNTER_COLUMNS = (
    "attempts",
    "requests",
    "unknown",
    "unpriced",
    "paid_failed",
    "images",
)
# What the attempts sent through the Batch API (SPEC 7) add besides: their
# requests, unpriced ones and tokens again, so that they are priced at the batch
# price (the job's totals hold every attempt; these say which part went by batch).
BATCH_COLUMNS = (
    "batch_requests",
    "batch_unpriced",
    *(f"batch_{name}" for name in TOKEN_COLUMNS),
)
STORE_FILE = "runner.db"  # the store in the output folder when no --db is given
# The schema steps `migrations.MIGRATIONS` applies, in order (migrations.py checks
# the two agree): a reader trusts only a store with exactly these steps applied.
MIGRATION_NAMES = (
    "m001_initial",
    "m002_answer_parts_and_grounding",
    "m003_simulated_runs_and_pruned_requests",
    "m004_marks",
    "m005_lineage",
    "m006_batches",
)
# What a user may mark an image (SPEC 6); an image with neither has no mark (a
# note alone may still be kept).
MARKS = ("star", "reject")


class Keep(enum.Enum):
    """A part of a mark (the mark, the note) that a change leaves as it is."""

    KEEP = "keep"


KEEP = Keep.KEEP
# Attempt outcomes that mean "the request went out and may have been billed, but
# nothing usable came back": counted as possibly paid.
POSSIBLY_PAID = ("unknown", "abandoned")
# Outcomes of attempts that may have failed before anything was sent: with no HTTP
# status they never reached the API, so they are not counted as requests (a
# run-fatal one: a base URL that could not be reached, or one no request can use).
NOT_SENT = ("transient", "not_sent", "fatal_run")

MIGRATIONS_SQL = "SELECT name FROM _runner_migrations ORDER BY name"
JOB_SQL = "SELECT id, name, job_path, model, settings_json FROM jobs WHERE name = :name"
JOB_NAMES_SQL = "SELECT name FROM jobs ORDER BY name"
COUNTS_SQL = (
    "SELECT status, count(*) FROM items WHERE job_id = :job_id AND active = 1 "
    "GROUP BY status"
)
TOTALS_SQL = (
    f"SELECT image_size, {', '.join(COUNTER_COLUMNS + TOKEN_COLUMNS + BATCH_COLUMNS)} "
    "FROM job_totals WHERE job_id = :job_id ORDER BY image_size"
)
BATCH_FIELDS = (
    "id", "display_name", "remote_name", "state", "input", "items", "requests",
    "succeeded", "failed", "pending", "created_at", "seen_at", "ended_at", "error",
    "model", "result_file", "simulated", "input_file",
)  # fmt: skip
# The job's batches (SPEC 7), newest first: live ones (no `ended_at`) and the
# last few closed ones, each as last seen (status never asks the API).
BATCHES_SQL = (
    f"SELECT {', '.join(BATCH_FIELDS)} FROM batches "
    "WHERE job_id = :job_id AND (ended_at IS NULL OR id IN (SELECT id FROM batches "
    "WHERE job_id = :job_id ORDER BY id DESC LIMIT :closed)) ORDER BY id DESC"
)
# Closed batches status lists besides the live ones.
SHOWN_CLOSED_BATCHES = 10
# Items a job file no longer has (deactivated by a sync), and the facts the
# running-totals rule reads of their real attempts: their requests are left out
# of the job's current ratios (the money stays in its totals).
STALE_SQL = "SELECT count(*) FROM items WHERE job_id = :job_id AND active = 0"
STALE_ATTEMPTS_SQL = (
    "SELECT a.outcome, a.http_status IS NOT NULL, a.total_tokens != 0, count(*) "
    "FROM items i JOIN attempts a ON a.item_id = i.id "
    "WHERE i.job_id = :job_id AND i.active = 0 AND a.simulated = 0 "
    "GROUP BY 1, 2, 3"
)
PRUNED_SQL = "SELECT pruned_requests FROM jobs WHERE id = :job_id"
# Marks of the images of active items: by mark (NULL: a note only), with a note or
# not. An image's mark row goes when its mark and note are both cleared.
MARKS_SQL = (
    "SELECT m.mark, m.note IS NOT NULL, count(*) FROM marks m "
    "JOIN items i ON i.id = m.item_id WHERE i.job_id = :job_id AND i.active = 1 "
    "GROUP BY 1, 2"
)
FAILURES_SQL = (
    "SELECT status, error, count(*) AS n FROM items "
    "WHERE job_id = :job_id AND active = 1 AND status IN ('failed', 'blocked') "
    "GROUP BY status, error ORDER BY n DESC"
)


@dataclass(frozen=True, slots=True)
class JobRow:
    id: int
    name: str
    job_path: str | None
    model: str | None
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Spend:
    """What attempts used: requests, images and tokens (summed `billed_tokens`)."""

    attempts: int = 0
    requests: int = 0  # attempts that may have reached the API
    unknown: int = 0  # sent, no usable answer: possibly billed
    paid_failed: int = 0  # answered with usage (billed) but not a success
    images: int = 0
    tokens: dict[str, int] = field(default_factory=dict)
    unpriced: dict[str | None, int] = field(default_factory=dict)  # by image size
    # Of these, the part sent through the Batch API (priced at the batch price).
    batch_requests: int = 0
    batch_tokens: dict[str, int] = field(default_factory=dict)
    batch_unpriced: dict[str | None, int] = field(default_factory=dict)

    @property
    def usage(self) -> dict[str, int]:
        """Totals under usageMetadata's own names."""
        t = self.tokens
        return {
            "promptTokenCount": t.get("prompt_tokens", 0),
            "candidatesTokenCount": t.get("candidates_tokens", 0),
            "thoughtsTokenCount": t.get("thoughts_tokens", 0),
            "totalTokenCount": t.get("total_tokens", 0),
        }


@dataclass(frozen=True, slots=True)
class RecordedUsage:
    """The usage a job's answers recorded, for one (model, image size, reference
    count): what estimates learn from, and what budget caps reserve per request."""

    answers: int = 0  # answers that brought images and recorded usage
    tokens: dict[str, int] = field(default_factory=dict)  # theirs, summed
    # The most any one billed answer used of each part billed at its own rate
    # (prompt_tokens, image_tokens, text_tokens: the rest of the output plus
    # thinking), and the most images one answer held: together at least what the
    # dearest answer cost, whatever the prices.
    heaviest: dict[str, int] = field(default_factory=dict)
    most_images: int = 0


# (model, image size or None for the model's default, reference images)
UsageKey = tuple[str | None, str | None, int]


@dataclass(frozen=True, slots=True)
class Status:
    job: str
    counts: dict[str, int]
    spend: Spend
    failures: list[dict[str, Any]] = field(default_factory=list)
    by_axis: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    stale: int = 0  # stored items the job file no longer has (`runner prune`)
    stale_requests: int = 0  # requests of stale and pruned items
    # images of active items by mark ("star", "reject") and with a note ("noted")
    marks: dict[str, int] = field(default_factory=dict)
    batches: list[BatchRow] = field(default_factory=list)  # newest first (SPEC 7)

    @property
    def current_requests(self) -> int:
        """Requests of the items the job file has now (for ratios)."""
        return self.spend.requests - self.stale_requests

    @property
    def usage(self) -> dict[str, int]:
        return self.spend.usage

    @property
    def requests(self) -> dict[str, int]:
        s = self.spend
        return {
            "sent": s.requests,
            "unknown": s.unknown,
            "not_sent": s.attempts - s.requests,
            "paid_failed": s.paid_failed,
        }


@dataclass(frozen=True, slots=True)
class Mark:
    """A user's mark on one image of an item (SPEC 6)."""

    key: str  # the item's key
    image: str  # the image, relative to the job folder, as in the item's outputs
    mark: str | None  # one of MARKS, or None: a note only
    note: str | None
    updated_at: str

    def as_dict(self) -> dict[str, Any]:
        return {"mark": self.mark, "note": self.note, "updated_at": self.updated_at}


@dataclass(frozen=True, slots=True)
class BatchRow:
    """One Batch API batch of a job (SPEC 7), as the store last saw it."""

    id: int
    display_name: str  # the job's name and this id: found again after a crash
    remote_name: str | None  # batches/...; None until the API's answer is recorded
    state: str | None  # BATCH_STATE_* as last seen; None before that
    input: str  # inline | file
    items: int
    requests: int | None = None  # batchStats as last seen
    succeeded: int | None = None
    failed: int | None = None
    pending: int | None = None
    created_at: str = ""
    seen_at: str | None = None
    ended_at: str | None = None  # closed: collected, or given up (see `error`)
    error: str | None = None
    model: str = ""
    result_file: str | None = None  # files/... of the results, once seen
    simulated: bool = False  # made on a --simulate API, gone with it
    # files/... of its uploaded JSONL input while the API may still hold it: set
    # at upload, cleared once deleted (on a closed batch: a delete that failed;
    # the API deletes it 48 hours after its upload)
    input_file: str | None = None

    @property
    def live(self) -> bool:
        return self.ended_at is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "display_name": self.display_name,
            "name": self.remote_name,
            "state": self.state,
            "live": self.live,
            "input": self.input,
            "items": self.items,
            "stats": {
                "requests": self.requests,
                "succeeded": self.succeeded,
                "failed": self.failed,
                "pending": self.pending,
            },
            "created_at": self.created_at,
            "seen_at": self.seen_at,
            "ended_at": self.ended_at,
            "error": self.error,
            "input_file": self.input_file,
        }


@dataclass(frozen=True, slots=True)
class JobSummary:
    name: str
    job_path: str | None
    counts: dict[str, int]
    updated_at: str


def read_job(query: Query, name: str) -> JobRow | None:
    """The job called `name` (JOB_SQL), or None."""
    for row in query(JOB_SQL, {"name": name}):
        return job_from_row(row)
    return None


def read_spend(query: Query, job: JobRow) -> Spend:
    """The job's running totals (TOTALS_SQL)."""
    return spend_from_rows(query(TOTALS_SQL, {"job_id": job.id}))


def read_status(query: Query, job: JobRow) -> Status:
    """Counts of active items, spend and failures by reason (no `by` axes), and
    the stale items with their requests."""
    params = {"job_id": job.id}
    counts = counts_from_rows(query(COUNTS_SQL, params))
    spend = read_spend(query, job)
    failures = failures_from_rows(query(FAILURES_SQL, params))
    marks = marks_from_rows(query(MARKS_SQL, params))
    batches = [
        batch_from_row(row)
        for row in query(BATCHES_SQL, {**params, "closed": SHOWN_CLOSED_BATCHES})
    ]
    stale = sum(n for (n,) in query(STALE_SQL, params))
    requests = sum(n for (n,) in query(PRUNED_SQL, params))
    if stale:
        for outcome, answered, billed, n in query(STALE_ATTEMPTS_SQL, params):
            counters = attempt_counters(outcome, bool(answered), bool(billed))
            requests += counters["requests"] * n
    return Status(
        job.name,
        counts,
        spend,
        failures,
        stale=stale,
        stale_requests=requests,
        marks=marks,
        batches=batches,
    )


def attempt_counters(
    outcome: str | None, answered: bool, billed: bool
) -> dict[str, int]:
    """The running-totals rule: what one attempt adds to each counter of its job's
    totals, besides its images and tokens (which are added as they are).

    `answered`: an HTTP status came back; `billed`: its usage counts tokens. An
    attempt still open has no outcome yet."""
    possibly_paid = outcome in POSSIBLY_PAID
    return {
        "attempts": 1,
        "requests": int(answered or outcome not in NOT_SENT),
        "unknown": int(possibly_paid),
        "unpriced": int(possibly_paid and not billed),
        "paid_failed": int(billed and outcome != "success"),
    }


def job_from_row(row: Sequence[Any]) -> JobRow:
    job_id, name, job_path, model, settings_json = row
    settings = json.loads(settings_json) if settings_json else {}
    return JobRow(job_id, name, job_path, model, settings)


def batch_from_row(row: Sequence[Any]) -> BatchRow:
    """A BatchRow from the BATCH_FIELDS of a batches row."""
    values = dict(zip(BATCH_FIELDS, row, strict=True))
    values["simulated"] = bool(values["simulated"])
    return BatchRow(**values)


def counts_from_rows(rows: Iterable[Sequence[Any]]) -> dict[str, int]:
    """Items per status (COUNTS_SQL), every status present."""
    counts = dict.fromkeys(STATUSES, 0)
    for status, n in rows:
        counts[status] = n
    return counts


def spend_from_rows(rows: Iterable[Sequence[Any]]) -> Spend:
    """The per-size running totals (TOTALS_SQL) summed into one Spend."""
    names = COUNTER_COLUMNS + TOKEN_COLUMNS + BATCH_COLUMNS
    sums = dict.fromkeys(names, 0)
    unpriced: dict[str | None, int] = {}
    batch_unpriced: dict[str | None, int] = {}
    for image_size, *values in rows:
        row = dict(zip(names, values, strict=True))
        for name in names:
            sums[name] += row[name]
        if row["unpriced"]:
            unpriced[image_size or None] = row["unpriced"]
        if row["batch_unpriced"]:
            batch_unpriced[image_size or None] = row["batch_unpriced"]
    return Spend(
        attempts=sums["attempts"],
        requests=sums["requests"],
        unknown=sums["unknown"],
        paid_failed=sums["paid_failed"],
        images=sums["images"],
        tokens={name: sums[name] for name in TOKEN_COLUMNS},
        unpriced=unpriced,
        batch_requests=sums["batch_requests"],
        # empty for a job that never sent a batch
        batch_tokens={name: sums[f"batch_{name}"] for name in TOKEN_COLUMNS}
        if any(sums[name] for name in BATCH_COLUMNS)
        else {},
        batch_unpriced=batch_unpriced,
    )


def failures_from_rows(rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """Failed and blocked items grouped by reason (FAILURES_SQL), most first."""
    return [
        {"status": status, "reason": error or "(no reason recorded)", "count": n}
        for status, error, n in rows
    ]


def marks_from_rows(rows: Iterable[Sequence[Any]]) -> dict[str, int]:
    """Marked images by mark, and those with a note (MARKS_SQL); every key present."""
    counts = dict.fromkeys((*MARKS, "noted"), 0)
    for mark, noted, n in rows:
        if mark in counts:
            counts[mark] += n
        if noted:
            counts["noted"] += n
    return counts
