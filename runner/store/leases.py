"""Who is running a job: runs, the job lease, and what a dead run left behind.

Owns: the runs table, the lease that lets one live process run a job at a time
(taken over at once from a dead process or an expired lease), and the recovery of
attempts a dead run left open. Each function works inside a transaction its caller
opened (the `Store` facade); must not open connections or decide retries.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from runner.errors import JobBusyError
from runner.store.attempts import abandoned_totals, add_totals, var_values_of
from runner.store.engine import chunks
from runner.store.schema import attempts, items, jobs, runs, timestamp

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from runner.store.records import JobRow

DEFAULT_LEASE_TTL = 30.0  # seconds; renewed every TTL/3 while a run is alive


@dataclass(frozen=True, slots=True)
class OpenAttempt:
    """An attempt a run began and never ended, with what names its item's images."""

    attempt_id: int
    item_id: int
    key: str
    prompt_id: str
    vars_json: str
    aspect_ratio: str
    ref_label: str
    sample: int
    started_at: str

    @property
    def var_values(self) -> tuple[str, ...]:
        return var_values_of(self.vars_json)


def acquire_lease(conn: Connection, job: JobRow, owner: str, ttl: float) -> None:
    host, pid = socket.gethostname(), os.getpid()
    row = conn.execute(
        sa.select(
            jobs.c.lease_owner,
            jobs.c.lease_host,
            jobs.c.lease_pid,
            jobs.c.lease_expires,
        ).where(jobs.c.id == job.id)
    ).one()
    if row.lease_owner and row.lease_owner != owner:
        alive = (row.lease_expires or 0) > time.time()
        if alive and row.lease_host == host and row.lease_pid:
            alive = _pid_alive(int(row.lease_pid))
        if alive:
            raise JobBusyError(job.name, f"pid {row.lease_pid} on {row.lease_host}")
    conn.execute(
        jobs.update()
        .where(jobs.c.id == job.id)
        .values(
            lease_owner=owner,
            lease_host=host,
            lease_pid=pid,
            lease_expires=time.time() + ttl,
        )
    )


def renew_lease(conn: Connection, job: JobRow, owner: str, ttl: float) -> None:
    conn.execute(
        jobs.update()
        .where(jobs.c.id == job.id, jobs.c.lease_owner == owner)
        .values(lease_expires=time.time() + ttl)
    )


def release_lease(conn: Connection, job: JobRow, owner: str) -> None:
    conn.execute(
        jobs.update()
        .where(jobs.c.id == job.id, jobs.c.lease_owner == owner)
        .values(
            lease_owner=None,
            lease_host=None,
            lease_pid=None,
            lease_expires=None,
        )
    )


def start_run(
    conn: Connection, job: JobRow, command: str, simulated: bool = False
) -> int:
    result = conn.execute(
        runs.insert().values(
            job_id=job.id,
            command=command,
            simulated=int(simulated),
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=timestamp(),
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def end_run(conn: Connection, run_id: int, result: str) -> None:
    conn.execute(
        runs.update()
        .where(runs.c.id == run_id)
        .values(ended_at=timestamp(), result=result)
    )


def open_attempts(conn: Connection, job: JobRow) -> list[OpenAttempt]:
    query = (
        sa.select(
            attempts.c.id.label("attempt_id"),
            items.c.id.label("item_id"),
            items.c.key,
            items.c.prompt_id,
            items.c.vars_json,
            items.c.aspect_ratio,
            items.c.ref_label,
            items.c.sample,
            attempts.c.started_at,
        )
        .join_from(items, attempts, attempts.c.item_id == items.c.id)
        .where(
            items.c.job_id == job.id,
            items.c.status == "running",
            attempts.c.ended_at.is_(None),
        )
    )
    return [OpenAttempt(**row._mapping) for row in conn.execute(query)]


def recover_abandoned(conn: Connection, job: JobRow) -> int:
    now = timestamp()
    running_ids = [
        r.id
        for r in conn.execute(
            sa.select(items.c.id).where(
                items.c.job_id == job.id, items.c.status == "running"
            )
        )
    ]
    for chunk in chunks(running_ids, 500):
        open_attempts = (
            sa.select(items.c.image_size, sa.func.count())
            .join(items, items.c.id == attempts.c.item_id)
            .where(
                attempts.c.item_id.in_(chunk),
                attempts.c.ended_at.is_(None),
                attempts.c.simulated == 0,  # simulated ones add to no totals
            )
            .group_by(items.c.image_size)
        )
        for size, n in conn.execute(open_attempts).all():
            add_totals(conn, job.id, size, **abandoned_totals(n))
        conn.execute(
            attempts.update()
            .where(attempts.c.item_id.in_(chunk), attempts.c.ended_at.is_(None))
            .values(
                ended_at=now,
                outcome="abandoned",
                reason="the runner stopped before the answer was recorded",
            )
        )
        conn.execute(
            items.update()
            .where(items.c.id.in_(chunk))
            .values(status="pending", updated_at=now)
        )
    return len(running_ids)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
