"""Taking things out of the store: a whole job (`runner rm`), or the items its job
file no longer has (`runner prune`).

Owns: the deletes, each under the job's lease (never while a live run holds it,
nor while the job has live batches at the API), marks with their items (prune
leaves a stale item with a marked image, or one waiting in a live batch), and what
they hand back: the image files the removed rows named, for the caller to delete
if asked. Works inside a transaction its caller opened; must not touch files.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import sqlalchemy as sa

from runner.errors import LiveBatchesError
from runner.store.attempts import summed_totals
from runner.store.batches import live_batches
from runner.store.engine import chunks
from runner.store.leases import acquire_lease
from runner.store.marks import drop_marks, marked_items, marked_stale
from runner.store.schema import attempts, batches, items, job_totals, jobs, runs

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.sql import ColumnElement

    from runner.store.records import JobRow

# Long enough for the deletes; the lease goes with the job row, or is released.
_LEASE_TTL = 60.0


@dataclass(frozen=True, slots=True)
class Removed:
    """What a removal took out of the store."""

    items: int
    attempts: int
    outputs: tuple[str, ...]  # image files (relative to the job folder) they named
    marks: int = 0  # marks on their images
    kept: int = 0  # stale items prune left: an image of theirs is marked
    waiting: int = 0  # stale items prune left: in a live batch (none marked)


def remove_job(conn: Connection, job: JobRow) -> Removed:
    """Delete the job with its items, attempts, runs and totals; never while it
    has live batches at the API (LiveBatchesError)."""
    acquire_lease(conn, job, uuid.uuid4().hex, _LEASE_TTL)  # JobBusyError if live
    check_no_live_batches(conn, job)
    removed = _remove_items(conn, job, items.c.job_id == job.id)
    conn.execute(batches.delete().where(batches.c.job_id == job.id))
    conn.execute(runs.delete().where(runs.c.job_id == job.id))
    conn.execute(job_totals.delete().where(job_totals.c.job_id == job.id))
    conn.execute(jobs.delete().where(jobs.c.id == job.id))
    return removed


def check_no_live_batches(conn: Connection, job: JobRow) -> None:
    """LiveBatchesError if the job has batches still live at a real API (those
    made on a --simulate API ended with their command, whatever the store says)."""
    live = [b for b in live_batches(conn, job) if not b.simulated]
    if live:
        waiting = conn.execute(
            sa.select(sa.func.count()).where(
                items.c.job_id == job.id,
                items.c.status == "in_batch",
                items.c.batch_id.in_([b.id for b in live]),
            )
        ).scalar_one()
        raise LiveBatchesError(job.name, len(live), int(waiting))


def prune_stale(conn: Connection, job: JobRow) -> Removed:
    """Delete the job's stale items (no longer in its job file) and their attempts.

    The money they cost stays in the job's totals (budget caps cover the job's
    whole life); their requests are remembered as pruned, so the job's current
    ratios still leave them out. A stale item with a marked image stays, marks and
    all: marked images are never pruned (issue 12); `runner mark --clear` first.
    So does one waiting in a live batch: its answer, paid for, is recorded when
    the batch's results are collected, which needs its item and attempt."""
    owner = uuid.uuid4().hex
    acquire_lease(conn, job, owner, _LEASE_TTL)
    waiting = _waiting(conn, job)
    kept, held = _kept(conn, job, waiting)
    prunable = sa.and_(items.c.id.not_in(marked_items()), sa.not_(waiting))
    totals = summed_totals(conn, job, [], sa.and_(items.c.active == 0, prunable))
    requests = sum(group["requests"] for group in totals.values())
    removed = _remove_items(
        conn, job, sa.and_(items.c.job_id == job.id, items.c.active == 0, prunable)
    )
    conn.execute(
        jobs.update()
        .where(jobs.c.id == job.id)
        .values(
            pruned_requests=jobs.c.pruned_requests + requests,
            lease_owner=None,
            lease_host=None,
            lease_pid=None,
            lease_expires=None,
        )
    )
    return replace(removed, kept=kept, waiting=held)


def kept_stale(conn: Connection, job: JobRow) -> tuple[int, int]:
    """The stale items `prune_stale` leaves: (with a marked image, waiting in a
    live batch and not marked)."""
    return _kept(conn, job, _waiting(conn, job))


def _kept(
    conn: Connection, job: JobRow, waiting: ColumnElement[bool]
) -> tuple[int, int]:
    held = conn.execute(
        sa.select(sa.func.count()).where(
            items.c.job_id == job.id,
            items.c.active == 0,
            items.c.id.not_in(marked_items()),
            waiting,
        )
    ).scalar_one()
    return marked_stale(conn, job), int(held)


def _waiting(conn: Connection, job: JobRow) -> ColumnElement[bool]:
    """Items waiting in a batch live at a real API (one made on a --simulate API
    ended with its command, whatever the store says)."""
    live = [b.id for b in live_batches(conn, job) if not b.simulated]
    return sa.and_(items.c.status == "in_batch", items.c.batch_id.in_(live))


def _remove_items(conn: Connection, job: JobRow, where: ColumnElement[bool]) -> Removed:
    ids = [i for (i,) in conn.execute(sa.select(items.c.id).where(where))]
    outputs: set[str] = set()
    for (named,) in conn.execute(
        sa.select(items.c.outputs_json).where(where, items.c.outputs_json.is_not(None))
    ):
        outputs.update(json.loads(named))
    attempt_count = 0
    marks = drop_marks(conn, ids)
    for chunk in chunks(ids, 500):
        for (named,) in conn.execute(
            sa.select(attempts.c.outputs_json).where(
                attempts.c.item_id.in_(chunk), attempts.c.outputs_json.is_not(None)
            )
        ):
            outputs.update(json.loads(named))
        attempt_count += conn.execute(
            attempts.delete().where(attempts.c.item_id.in_(chunk))
        ).rowcount
        conn.execute(items.delete().where(items.c.id.in_(chunk)))
    return Removed(len(ids), attempt_count, tuple(sorted(outputs)), marks)
