"""Attempts: the work handed to a run, each request's record, and the running totals.

Owns: the items a run may send, requeueing for a retry, the batched write path that
begins and ends attempts (statements built once, at import), and the application
of the running-totals rule (`records.attempt_counters`, stdlib so the status reader
applies it too): the write path applies it to each attempt, `summed_totals` to
stored attempts. Attempts of a simulated run add to no totals (SPEC 5). Works
inside a transaction its caller opened.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from runner.pricing import billed_tokens
from runner.store.engine import chunks
from runner.store.records import (
    BATCH_COLUMNS,
    COUNTER_COLUMNS,
    TOKEN_COLUMNS,
    attempt_counters,
)
from runner.store.schema import attempts, items, job_totals, runs, timestamp

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from sqlalchemy.engine import Connection
    from sqlalchemy.sql import ColumnElement

    from runner.store.records import JobRow


@dataclass(frozen=True, slots=True)
class WorkItem:
    """What a worker needs to send one item and name its files."""

    id: int
    key: str
    prompt_id: str
    vars_json: str
    aspect_ratio: str
    ref_label: str
    sample: int
    request_json: str
    attempts: int
    tries_used: int
    unknown_used: int

    @property
    def var_values(self) -> tuple[str, ...]:
        return var_values_of(self.vars_json)


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """The end of one attempt, and what it means for its item."""

    outcome: str
    reason: str
    item_status: str  # the item's new status
    http_status: int | None = None
    finish_reason: str | None = None
    usage: Mapping[str, Any] | None = None
    model_version: str | None = None
    response_id: str | None = None
    latency: float | None = None
    retry_after: float | None = None
    outputs: Sequence[str] = ()
    counts_as_try: bool = True
    counts_as_unknown: bool = False
    parts: Sequence[Mapping[str, Any]] = ()  # the answer's, without image bytes
    grounding: Mapping[str, Any] | None = None  # its groundingMetadata


@dataclass(frozen=True, slots=True)
class AttemptStart:
    """A request about to go out (see Store.record_attempts)."""

    item_id: int
    run_id: int
    number: int


@dataclass(frozen=True, slots=True)
class AttemptEnd:
    """How an attempt ended (see Store.record_attempts)."""

    attempt_id: int
    item_id: int
    result: AttemptResult


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """A whole attempt at once: an answer a Batch API batch brought (SPEC 7),
    recorded when collected. Only while its item is still in that batch: a
    result collected twice (after a crash mid-download) is recorded once."""

    item_id: int
    run_id: int
    number: int
    batch_id: int
    result: AttemptResult


def var_values_of(vars_json: str) -> tuple[str, ...]:
    """An item's var values (its `vars_json`), in the order its prompt first uses
    each var: the order the plan wrote them in."""
    return tuple(json.loads(vars_json).values())


def pending_items(conn: Connection, job: JobRow) -> list[WorkItem]:
    rows = conn.execute(
        sa.select(
            items.c.id,
            items.c.key,
            items.c.prompt_id,
            items.c.vars_json,
            items.c.aspect_ratio,
            items.c.ref_label,
            items.c.sample,
            items.c.request_json,
            items.c.attempts,
            items.c.tries_used,
            items.c.unknown_used,
        )
        .where(
            items.c.job_id == job.id,
            items.c.active == 1,
            items.c.status == "pending",
        )
        .order_by(items.c.position)
    ).all()
    return [WorkItem(**row._mapping) for row in rows]


def requeue(conn: Connection, job: JobRow, statuses: Sequence[str]) -> int:
    result = conn.execute(
        items.update()
        .where(
            items.c.job_id == job.id,
            items.c.active == 1,
            items.c.status.in_(statuses),
        )
        .values(status="pending", tries_used=0, unknown_used=0, updated_at=timestamp())
    )
    return int(result.rowcount)


def requeue_simulated(conn: Connection, job: JobRow) -> dict[int, list[str]]:
    """Put the job's simulated successes back to pending with fresh tries, without
    their outputs, usage and grounding (no row names a simulated result as the
    item's); their images (item id -> outputs), which stay on disk until a real
    answer replaces them."""
    simulated = sa.and_(
        items.c.job_id == job.id, items.c.active == 1, items.c.status == "simulated"
    )
    rows = conn.execute(
        sa.select(items.c.id, items.c.outputs_json).where(simulated)
    ).all()
    if rows:
        conn.execute(
            items.update()
            .where(simulated)
            .values(
                status="pending",
                tries_used=0,
                unknown_used=0,
                outputs_json=None,
                usage_json=None,
                grounding_json=None,
                finish_reason=None,
                updated_at=timestamp(),
            )
        )
    return {item_id: json.loads(outputs or "[]") for item_id, outputs in rows}


def outputs_of(
    conn: Connection, job: JobRow, item_ids: Sequence[int]
) -> dict[int, tuple[str, list[str]]]:
    """item id -> (status, outputs) of these items of the job."""
    found: dict[int, tuple[str, list[str]]] = {}
    for chunk in chunks(list(item_ids), 500):
        for item_id, status, outputs in conn.execute(
            sa.select(items.c.id, items.c.status, items.c.outputs_json).where(
                items.c.job_id == job.id, items.c.id.in_(chunk)
            )
        ):
            found[item_id] = (status, json.loads(outputs or "[]"))
    return found


Change = AttemptStart | AttemptEnd | AttemptRecord


def record_attempts(conn: Connection, changes: Sequence[Change]) -> list[int | None]:
    """Begin and finish attempts (starts first, then ends); the new attempt's id for
    each AttemptStart and each AttemptRecord recorded (None for an AttemptEnd, and
    for an AttemptRecord whose item is no longer in its batch)."""
    now = timestamp()
    starts = [c for c in changes if isinstance(c, AttemptStart)]
    records = _still_in_batch(
        conn, [c for c in changes if isinstance(c, AttemptRecord)]
    )
    started = _start_attempts(
        conn,
        [*starts, *(AttemptStart(r.item_id, r.run_id, r.number) for r in records)],
        now,
        transports=["interactive"] * len(starts) + ["batch"] * len(records),
    )
    recorded = dict(zip(map(id, records), started[len(starts) :], strict=True))
    ends = [c for c in changes if isinstance(c, AttemptEnd)] + [
        AttemptEnd(recorded[id(r)], r.item_id, r.result) for r in records
    ]
    if ends:
        _end_attempts(conn, ends, now)
    new_ids = iter(started)
    return [
        next(new_ids)
        if isinstance(c, AttemptStart)
        else recorded.get(id(c))
        if isinstance(c, AttemptRecord)
        else None
        for c in changes
    ]


def _still_in_batch(
    conn: Connection, records: Sequence[AttemptRecord]
) -> list[AttemptRecord]:
    """The records whose item is still `in_batch` in their batch (one each)."""
    if not records:
        return []
    current: set[tuple[int, int]] = set()
    for chunk in chunks(sorted({r.item_id for r in records}), 500):
        current.update(
            (item_id, batch_id)
            for item_id, batch_id in conn.execute(
                sa.select(items.c.id, items.c.batch_id).where(
                    items.c.id.in_(chunk), items.c.status == "in_batch"
                )
            )
        )
    kept = []
    for record in records:
        if (record.item_id, record.batch_id) in current:
            current.discard((record.item_id, record.batch_id))
            kept.append(record)
    return kept


# -- the running-totals rule --------------------------------------------------------


def batch_totals(
    counters: Mapping[str, int], tokens: Mapping[str, int]
) -> dict[str, int]:
    """What an attempt sent through the Batch API adds to the BATCH_COLUMNS, from
    what it adds to the others (`attempt_counters` and its billed tokens)."""
    return {
        "batch_requests": counters["requests"],
        "batch_unpriced": counters["unpriced"],
        **{f"batch_{name}": tokens[name] for name in TOKEN_COLUMNS},
    }


def abandoned_totals(n: int) -> dict[str, int]:
    """What `n` attempts closed as abandoned (no answer, no usage) add."""
    counters = attempt_counters("abandoned", answered=False, billed=False)
    return {name: value * n for name, value in counters.items()}


def add_totals(
    conn: Connection, job_id: int, image_size: str | None, **deltas: int
) -> None:
    """Add to the job's running totals at one image size (None: the default)."""
    size = image_size or ""
    params = {"d_" + name: deltas.get(name, 0) for name in _TOTAL_COLUMNS}
    done = conn.execute(_TOTALS_ADD, _params(job_id=job_id, size=size, **params))
    if done.rowcount == 0:
        zero = dict.fromkeys(_TOTAL_COLUMNS, 0)
        conn.execute(
            job_totals.insert().values(
                job_id=job_id, image_size=size, **{**zero, **deltas}
            )
        )


def summed_totals(
    conn: Connection,
    job: JobRow,
    by: Sequence[ColumnElement[Any]],
    *where: ColumnElement[bool],
) -> dict[tuple[Any, ...], dict[str, int]]:
    """The job's totals summed from its real stored attempts (those matching `where`),
    grouped by the item columns `by`: each group's COUNTER_COLUMNS, TOKEN_COLUMNS
    and BATCH_COLUMNS.

    SQL counts the attempts of each group by the facts `attempt_counters` reads, and
    the rule is applied to each such class of attempts, so a few rows come back
    however many attempts there are."""
    # attempt_counters' arguments, as _attempt_totals takes them from a result,
    # and the transport
    facts = (
        attempts.c.outcome,
        attempts.c.http_status.is_not(None),
        attempts.c.total_tokens != 0,
        attempts.c.transport,
    )
    query = (
        sa.select(
            *by,
            *facts,
            sa.func.count(),
            sa.func.sum(attempts.c.images),
            *(sa.func.sum(attempts.c[name]) for name in TOKEN_COLUMNS),
        )
        .join_from(attempts, items, items.c.id == attempts.c.item_id)
        .where(items.c.job_id == job.id, attempts.c.simulated == 0, *where)
        .group_by(*by, *facts)
    )
    totals: dict[tuple[Any, ...], dict[str, int]] = {}
    for row in conn.execute(query):
        group = tuple(row[: len(by)])
        outcome, answered, billed, transport, n, images, *sums = row[len(by) :]
        into = totals.get(group)
        if into is None:
            into = totals[group] = dict.fromkeys(_TOTAL_COLUMNS, 0)
        counters = {
            name: value * n
            for name, value in attempt_counters(
                outcome, bool(answered), bool(billed)
            ).items()
        }
        tokens = {
            name: int(value) for name, value in zip(TOKEN_COLUMNS, sums, strict=True)
        }
        deltas = {**counters, "images": int(images), **tokens}
        if transport == "batch":
            deltas.update(batch_totals(counters, tokens))
        for name, value in deltas.items():
            into[name] += value
    return totals


def rebuild_totals(conn: Connection, job: JobRow) -> None:
    """Replace the job's running totals with those summed from its ended attempts."""
    size = sa.func.coalesce(items.c.image_size, "")
    totals = summed_totals(conn, job, [size], attempts.c.ended_at.is_not(None))
    conn.execute(job_totals.delete().where(job_totals.c.job_id == job.id))
    if totals:
        conn.execute(
            job_totals.insert(),
            [
                {"job_id": job.id, "image_size": image_size, **values}
                for (image_size,), values in totals.items()
            ],
        )


# -- the write path: statements built once, at import ------------------------------
# (building them per call cost more CPU than running them)

_ITEM_RUNNING = (
    items.update()
    .where(items.c.id == sa.bindparam("p_item_id"))
    .values(
        status="running",
        attempts=sa.bindparam("p_number"),
        updated_at=sa.bindparam("p_now"),
    )
)
_ATTEMPT_START = attempts.insert().values(
    item_id=sa.bindparam("p_item_id"),
    run_id=sa.bindparam("p_run_id"),
    number=sa.bindparam("p_number"),
    started_at=sa.bindparam("p_now"),
    transport=sa.bindparam("p_transport"),
    # the run's flag, looked up by its primary key inside the insert
    simulated=sa.select(runs.c.simulated)
    .where(runs.c.id == sa.bindparam("p_run_id"))
    .scalar_subquery(),
)
_ATTEMPT_END = (
    attempts.update()
    .where(attempts.c.id == sa.bindparam("p_attempt_id"))
    .values(
        ended_at=sa.bindparam("p_now"),
        **{
            name: sa.bindparam("p_" + name)
            for name in (
                "http_status",
                "outcome",
                "reason",
                "finish_reason",
                "usage_json",
                "model_version",
                "response_id",
                "latency_ms",
                "retry_after",
                "outputs_json",
                "images",
                *TOKEN_COLUMNS,
                "parts_json",
                "grounding_json",
            )
        },  # fmt: skip
    )
)
_SUCCEEDED = sa.bindparam("p_succeeded") == 1
_ITEM_END = (
    items.update()
    .where(items.c.id == sa.bindparam("p_item_id"))
    .values(
        status=sa.bindparam("p_status"),
        updated_at=sa.bindparam("p_now"),
        finish_reason=sa.bindparam("p_finish_reason"),
        error=sa.bindparam("p_error"),
        tries_used=items.c.tries_used + sa.bindparam("p_try_inc"),
        unknown_used=items.c.unknown_used + sa.bindparam("p_unknown_inc"),
        outputs_json=sa.case(
            (_SUCCEEDED, sa.bindparam("p_outputs_json")), else_=items.c.outputs_json
        ),
        usage_json=sa.case(
            (_SUCCEEDED, sa.bindparam("p_usage_json")), else_=items.c.usage_json
        ),
        grounding_json=sa.case(
            (_SUCCEEDED, sa.bindparam("p_grounding_json")),
            else_=items.c.grounding_json,
        ),
    )
)
_ATTEMPTS_JOB_SIZE = (
    sa.select(
        attempts.c.id,
        items.c.job_id,
        items.c.image_size,
        attempts.c.simulated,
        attempts.c.transport,
    )
    .join_from(attempts, items, items.c.id == attempts.c.item_id)
    .where(attempts.c.id.in_(sa.bindparam("p_attempt_ids", expanding=True)))
)
_TOTALS_ADD = (
    job_totals.update()
    .where(
        job_totals.c.job_id == sa.bindparam("p_job_id"),
        job_totals.c.image_size == sa.bindparam("p_size"),
    )
    .values(
        {
            job_totals.c[name]: job_totals.c[name] + sa.bindparam("p_d_" + name)
            for name in COUNTER_COLUMNS + TOKEN_COLUMNS + BATCH_COLUMNS
        }
    )
)
_TOTAL_COLUMNS = COUNTER_COLUMNS + TOKEN_COLUMNS + BATCH_COLUMNS


def _params(**values: Any) -> dict[str, Any]:
    """Bind parameters of the prebuilt statements (named p_*: SQLAlchemy reserves
    column names for the SET clause)."""
    return {"p_" + name: value for name, value in values.items()}


def _start_attempts(
    conn: Connection,
    starts: Sequence[AttemptStart],
    now: str,
    transports: Sequence[str],
) -> list[int]:
    """Items become `running`, each with a new attempt; the attempts' ids."""
    if not starts:
        return []
    conn.execute(
        _ITEM_RUNNING,
        [_params(item_id=c.item_id, number=c.number, now=now) for c in starts],
    )
    ids = []
    for change, transport in zip(starts, transports, strict=True):
        key = conn.execute(
            _ATTEMPT_START,
            _params(
                item_id=change.item_id,
                run_id=change.run_id,
                number=change.number,
                now=now,
                transport=transport,
            ),
        ).inserted_primary_key
        assert key is not None
        ids.append(int(key[0]))
    return ids


def _end_attempts(conn: Connection, ends: Sequence[AttemptEnd], now: str) -> None:
    """Close the attempts, move their items and add to their jobs' totals (each
    statement run once for the whole batch). A simulated attempt adds to no
    totals, and its success leaves the item `simulated` (SPEC 5)."""
    attempt_ids = sorted({c.attempt_id for c in ends})
    where: dict[int, tuple[int, str | None, bool, str]] = {
        attempt_id: (job_id, size, bool(simulated), transport)
        for attempt_id, job_id, size, simulated, transport in conn.execute(
            _ATTEMPTS_JOB_SIZE, {"p_attempt_ids": attempt_ids}
        )
    }
    attempt_rows = []
    item_rows = []
    for change in ends:
        result = change.result
        usage = None if result.usage is None else json.dumps(result.usage)
        outputs = json.dumps(list(result.outputs)) if result.outputs else None
        parts = json.dumps(list(result.parts)) if result.parts else None
        grounding = None if result.grounding is None else json.dumps(result.grounding)
        succeeded = result.item_status == "succeeded"
        attempt_rows.append(
            _params(
                attempt_id=change.attempt_id,
                now=now,
                http_status=result.http_status,
                outcome=result.outcome,
                reason=result.reason,
                finish_reason=result.finish_reason,
                usage_json=usage,
                model_version=result.model_version,
                response_id=result.response_id,
                latency_ms=None if result.latency is None else result.latency * 1000,
                retry_after=result.retry_after,
                outputs_json=outputs,
                images=len(result.outputs),
                **billed_tokens(result.usage),
                parts_json=parts,
                grounding_json=grounding,
            )
        )
        status = result.item_status
        if succeeded and where[change.attempt_id][2]:
            status = "simulated"
        item_rows.append(
            _params(
                item_id=change.item_id,
                status=status,
                now=now,
                finish_reason=result.finish_reason,
                error=None if succeeded else result.reason,
                try_inc=int(result.counts_as_try),
                unknown_inc=int(result.counts_as_unknown),
                succeeded=int(succeeded),
                outputs_json=outputs,
                usage_json=usage,
                grounding_json=grounding,
            )
        )
    conn.execute(_ATTEMPT_END, attempt_rows)
    conn.execute(_ITEM_END, item_rows)
    totals: dict[tuple[int, str | None], dict[str, int]] = {}
    for change in ends:
        job_id, size, simulated, transport = where[change.attempt_id]
        if simulated:
            continue
        deltas = _attempt_totals(change.result, transport)
        into = totals.setdefault((job_id, size), dict.fromkeys(_TOTAL_COLUMNS, 0))
        for name, value in deltas.items():
            into[name] += value
    for (job_id, size), deltas in totals.items():
        add_totals(conn, job_id, size, **deltas)


def _attempt_totals(result: AttemptResult, transport: str) -> dict[str, int]:
    """What one ended attempt adds to its job's running totals."""
    tokens = billed_tokens(result.usage)
    counters = attempt_counters(
        result.outcome, result.http_status is not None, bool(tokens["total_tokens"])
    )
    deltas = {**counters, "images": len(result.outputs), **tokens}
    if transport == "batch":
        deltas.update(batch_totals(counters, tokens))
    return deltas
