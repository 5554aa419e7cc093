"""A job's Batch API batches (SPEC 7): recorded before they are created, followed
as the API reports them, closed once their results are in.

Owns the batches table and the items' `in_batch` state: a batch is recorded (its
items `in_batch`) in one transaction before the create call, so that after a crash
its display name finds it again and its items are never sent twice; its remote
name, state and counts as last seen; closing it, with the items it still holds put
back to pending. Works inside a transaction its caller opened; must not know HTTP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from runner.store.attempts import WorkItem
from runner.store.engine import chunks
from runner.store.records import BATCH_FIELDS, batch_from_row
from runner.store.schema import batches, items, timestamp

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from sqlalchemy.engine import Connection

    from runner.store.records import BatchRow, JobRow

# The API's batchStats, as BatchRow and the batches table name them.
STAT_FIELDS = ("requests", "succeeded", "failed", "pending")


def display_name(job: JobRow, batch_id: int) -> str:
    """The batch's displayName: its job and its record, unique in the store."""
    return f"{job.name}-batch-{batch_id}"


def record_batch(
    conn: Connection,
    job: JobRow,
    run_id: int,
    item_ids: Sequence[int],
    *,
    model: str,
    input_kind: str,
    simulated: bool,
) -> BatchRow:
    """A new batch of these pending items, which become `in_batch` in it."""
    now = timestamp()
    key = conn.execute(
        batches.insert().values(
            job_id=job.id,
            run_id=run_id,
            display_name="",
            model=model,
            input=input_kind,
            items=len(item_ids),
            simulated=int(simulated),
            created_at=now,
            updated_at=now,
        )
    ).inserted_primary_key
    assert key is not None
    batch_id = int(key[0])
    conn.execute(
        batches.update()
        .where(batches.c.id == batch_id)
        .values(display_name=display_name(job, batch_id))
    )
    for chunk in chunks(list(item_ids), 500):
        conn.execute(
            items.update()
            .where(
                items.c.job_id == job.id,
                items.c.id.in_(chunk),
                items.c.status == "pending",
            )
            .values(status="in_batch", batch_id=batch_id, updated_at=now)
        )
    batch = get_batch(conn, batch_id)
    assert batch is not None
    return batch


def get_batch(conn: Connection, batch_id: int) -> BatchRow | None:
    row = conn.execute(
        sa.select(*(batches.c[name] for name in BATCH_FIELDS)).where(
            batches.c.id == batch_id
        )
    ).first()
    return None if row is None else batch_from_row(tuple(row))


def live_batches(conn: Connection, job: JobRow) -> list[BatchRow]:
    """The job's batches not closed yet, oldest first."""
    rows = conn.execute(
        sa.select(*(batches.c[name] for name in BATCH_FIELDS))
        .where(batches.c.job_id == job.id, batches.c.ended_at.is_(None))
        .order_by(batches.c.id)
    ).all()
    return [batch_from_row(tuple(row)) for row in rows]


def update_batch(conn: Connection, batch_id: int, **fields: Any) -> None:
    """Set a batch's remote name, state, counts, input or result file; a state or
    count given means the API was just asked (`seen_at`)."""
    now = timestamp()
    values: dict[str, Any] = {**fields, "updated_at": now}
    if "state" in fields or any(name in fields for name in STAT_FIELDS):
        values["seen_at"] = now
    conn.execute(batches.update().where(batches.c.id == batch_id).values(values))


def batch_items(
    conn: Connection, batch_id: int, *, waiting: bool
) -> list[tuple[WorkItem, bool]]:
    """The batch's items in input order (plan order), each with whether it still
    waits for its result (`in_batch` there); with `waiting`, only those."""
    where = [items.c.batch_id == batch_id]
    if waiting:
        where.append(items.c.status == "in_batch")
    rows = conn.execute(
        sa.select(*(items.c[name] for name in _WORK_FIELDS), items.c.status)
        .where(*where)
        .order_by(items.c.position)
    ).all()
    return [
        (WorkItem(*row[: len(_WORK_FIELDS)]), row[-1] == "in_batch") for row in rows
    ]


def close_batch(conn: Connection, batch_id: int, *, error: str | None = None) -> int:
    """Close the batch; items it still holds go back to pending (never tried: see
    the scheduler for items a batch did try). How many went back."""
    now = timestamp()
    back = conn.execute(
        items.update()
        .where(items.c.batch_id == batch_id, items.c.status == "in_batch")
        .values(status="pending", updated_at=now)
    ).rowcount
    conn.execute(
        batches.update()
        .where(batches.c.id == batch_id)
        .values(ended_at=now, updated_at=now, error=error)
    )
    return int(back)


def in_batch_counts(conn: Connection, job: JobRow) -> Mapping[int, int]:
    """Live batch id -> how many of its items still wait for a result."""
    rows = conn.execute(
        sa.select(items.c.batch_id, sa.func.count())
        .where(items.c.job_id == job.id, items.c.status == "in_batch")
        .group_by(items.c.batch_id)
    ).all()
    return {int(batch_id): int(n) for batch_id, n in rows}


_WORK_FIELDS = (
    "id", "key", "prompt_id", "vars_json", "aspect_ratio", "ref_label", "sample",
    "request_json", "attempts", "tries_used", "unknown_used",
)  # fmt: skip
