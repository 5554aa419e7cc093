"""The SQLite store (SQLAlchemy 2 Core): jobs, items, attempts, runs.

Owns: the schema and its numbered migrations, WAL pragmas, plan upsert, the job lease,
attempt records, recovery of items a dead process left running, and status queries.
Synchronous; the scheduler calls it from worker threads. Must not know HTTP, YAML or
file formats, and never sees the API key.
"""

from __future__ import annotations

import json
import os
import random
import socket
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from runner.errors import JobBusyError, StoreError
from runner.pricing import billed_tokens

# The records and the status SQL live in runner.records, without SQLAlchemy, so that
# `runner status` can read without it; the `X as X` names stay importable from here.
from runner.store.records import COUNTER_COLUMNS as COUNTER_COLUMNS
from runner.store.records import (
    MIGRATION_NAMES,
    STORE_FILE,
    read_job,
    read_spend,
    read_status,
)
from runner.store.records import POSSIBLY_PAID as POSSIBLY_PAID
from runner.store.records import STATUSES as STATUSES
from runner.store.records import TOKEN_COLUMNS as TOKEN_COLUMNS
from runner.store.records import JobRow as JobRow
from runner.store.records import JobSummary as JobSummary
from runner.store.records import Spend as Spend
from runner.store.records import Status as Status

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence
    from pathlib import Path

    from sqlalchemy.engine import Connection, Engine

    from runner.plan import Item
    from runner.store.records import Query

SCHEMA_VERSION = 1
DEFAULT_BUSY_TIMEOUT = 15.0  # seconds a writer waits for another process's lock
DEFAULT_LEASE_TTL = 30.0  # seconds; renewed every TTL/3 while a run is alive

metadata = sa.MetaData()

migrations_table = sa.Table(
    "_runner_migrations",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("applied_at", sa.Text, nullable=False),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("job_path", sa.Text),
    sa.Column("model", sa.Text),
    sa.Column("settings_json", sa.Text),
    sa.Column("plan_digest", sa.Text),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Text, nullable=False),
    sa.Column("lease_owner", sa.Text),
    sa.Column("lease_host", sa.Text),
    sa.Column("lease_pid", sa.Integer),
    sa.Column("lease_expires", sa.Float),
)

items = sa.Table(
    "items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id"), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("active", sa.Integer, nullable=False, default=1),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("prompt_id", sa.Text, nullable=False),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("vars_json", sa.Text, nullable=False),
    sa.Column("aspect_ratio", sa.Text, nullable=False),
    sa.Column("image_size", sa.Text),
    sa.Column("ref_label", sa.Text, nullable=False),
    sa.Column("references_json", sa.Text, nullable=False),
    sa.Column("sample", sa.Integer, nullable=False),
    sa.Column("request_json", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("tries_used", sa.Integer, nullable=False, default=0),
    sa.Column("unknown_used", sa.Integer, nullable=False, default=0),
    sa.Column("finish_reason", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("outputs_json", sa.Text),
    sa.Column("usage_json", sa.Text),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Text, nullable=False),
    sa.UniqueConstraint("job_id", "key", name="uq_items_job_key"),
    sa.Index("ix_items_job_status", "job_id", "active", "status"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id"), nullable=False),
    sa.Column("command", sa.Text, nullable=False),
    sa.Column("host", sa.Text),
    sa.Column("pid", sa.Integer),
    sa.Column("started_at", sa.Text, nullable=False),
    sa.Column("ended_at", sa.Text),
    sa.Column("result", sa.Text),
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), nullable=False),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id")),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("started_at", sa.Text, nullable=False),
    sa.Column("ended_at", sa.Text),
    sa.Column("http_status", sa.Integer),
    sa.Column("outcome", sa.Text),
    sa.Column("reason", sa.Text),
    sa.Column("finish_reason", sa.Text),
    sa.Column("usage_json", sa.Text),
    sa.Column("model_version", sa.Text),
    sa.Column("response_id", sa.Text),
    sa.Column("latency_ms", sa.Float),
    sa.Column("retry_after", sa.Float),
    sa.Column("outputs_json", sa.Text),
    # Token counts split by how they are billed, copied out of usage_json so that
    # status and budgets are SQL sums, not a JSON parse per attempt.
    sa.Column("prompt_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("candidates_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("thoughts_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("image_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("total_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("images", sa.Integer, nullable=False, default=0),
    sa.Index("ix_attempts_item", "item_id"),
)


# Running totals per job and image size, kept by finish_attempt and
# recover_abandoned in the same transaction as the attempt they count, so status
# and budgets read a few rows instead of summing every attempt.
job_totals = sa.Table(
    "job_totals",
    metadata,
    sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id"), primary_key=True),
    sa.Column("image_size", sa.Text, primary_key=True),  # "" = the model's default
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("requests", sa.Integer, nullable=False, default=0),
    sa.Column("unknown", sa.Integer, nullable=False, default=0),
    sa.Column("unpriced", sa.Integer, nullable=False, default=0),
    sa.Column("paid_failed", sa.Integer, nullable=False, default=0),
    sa.Column("images", sa.Integer, nullable=False, default=0),
    *(sa.Column(name, sa.Integer, nullable=False, default=0) for name in TOKEN_COLUMNS),
)

# Axes that status groups by, and the item column holding each.
AXIS_COLUMNS = {
    "prompt": items.c.prompt_id,
    "aspect_ratio": items.c.aspect_ratio,
    "image_size": items.c.image_size,
    "references": items.c.ref_label,
}


@dataclass(frozen=True, slots=True)
class SyncResult:
    new: int
    existing: int
    deactivated: int


@dataclass(frozen=True, slots=True)
class WorkItem:
    """What a worker needs to send one item and name its files."""

    id: int
    key: str
    prompt_id: str
    aspect_ratio: str
    ref_label: str
    sample: int
    request_json: str
    attempts: int
    tries_used: int
    unknown_used: int


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


class Store:
    """One database, opened with migrations applied."""

    def __init__(self, url: str, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self.url = url
        self._lock = threading.RLock()
        try:
            self.engine: Engine = sa.create_engine(url)
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot open the store {_safe_url(url)}: {_db_reason(exc)}; check "
                "the --db URL"
            ) from exc
        try:
            if self.engine.dialect.name == "sqlite":
                _sqlite_setup(self.engine, busy_timeout)
            self._migrate()
        except BaseException:
            self.engine.dispose()
            raise

    @classmethod
    def for_output(cls, output_dir: Path, db_url: str | None = None) -> Store:
        """`db_url`, or `<output_dir>/runner.db` (SQLite, WAL)."""
        if db_url:
            return cls(db_url)
        output_dir.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{output_dir / STORE_FILE}")

    def close(self) -> None:
        self.engine.dispose()

    # -- jobs -------------------------------------------------------------------------

    def upsert_job(
        self,
        name: str,
        job_path: str | None,
        model: str | None,
        settings: Mapping[str, Any] | None = None,
    ) -> JobRow:
        """Create or refresh a job; `settings` are the run settings `retry` reuses."""
        now = _now()
        settings = dict(settings or {})
        settings_json = json.dumps(settings, sort_keys=True)
        with self._begin() as conn:
            row = conn.execute(sa.select(jobs.c.id).where(jobs.c.name == name)).first()
            if row is None:
                job_id = conn.execute(
                    jobs.insert().values(
                        name=name,
                        job_path=job_path,
                        model=model,
                        settings_json=settings_json,
                        created_at=now,
                        updated_at=now,
                    )
                ).inserted_primary_key
                assert job_id is not None
                return JobRow(int(job_id[0]), name, job_path, model, settings)
            conn.execute(
                jobs.update()
                .where(jobs.c.id == row.id)
                .values(
                    job_path=job_path,
                    model=model,
                    settings_json=settings_json,
                    updated_at=now,
                )
            )
            return JobRow(int(row.id), name, job_path, model, settings)

    def get_job(self, name: str) -> JobRow | None:
        with self._connect() as conn:
            return read_job(_query(conn), name)

    def list_jobs(self) -> list[JobSummary]:
        with self._connect() as conn:
            job_rows = conn.execute(sa.select(jobs).order_by(jobs.c.name)).all()
            counts = conn.execute(
                sa.select(items.c.job_id, items.c.status, sa.func.count())
                .where(items.c.active == 1)
                .group_by(items.c.job_id, items.c.status)
            ).all()
        by_job: dict[int, dict[str, int]] = {}
        for job_id, status, n in counts:
            by_job.setdefault(job_id, dict.fromkeys(STATUSES, 0))[status] = n
        return [
            JobSummary(
                name=r.name,
                job_path=r.job_path,
                counts=by_job.get(r.id, dict.fromkeys(STATUSES, 0)),
                updated_at=r.updated_at,
            )
            for r in job_rows
        ]

    # -- lease: one live process per job --------------------------------------------

    def acquire_lease(
        self, job: JobRow, owner: str, ttl: float = DEFAULT_LEASE_TTL
    ) -> None:
        """Take the job's lease, or raise JobBusyError if a live process holds it.

        A lease whose process is gone (same host, pid not alive) or whose time ran out
        is taken over at once, so a crash never blocks the next run.
        """
        host, pid = socket.gethostname(), os.getpid()
        with self._begin() as conn:
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
                    raise JobBusyError(
                        job.name, f"pid {row.lease_pid} on {row.lease_host}"
                    )
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

    def renew_lease(
        self, job: JobRow, owner: str, ttl: float = DEFAULT_LEASE_TTL
    ) -> None:
        with self._begin() as conn:
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job.id, jobs.c.lease_owner == owner)
                .values(lease_expires=time.time() + ttl)
            )

    def release_lease(self, job: JobRow, owner: str) -> None:
        with self._begin() as conn:
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

    # -- plan -------------------------------------------------------------------------

    def sync_plan(
        self, job: JobRow, plan_items: Sequence[Item], digest: str | None = None
    ) -> SyncResult:
        """Insert new items, refresh labels of known ones, deactivate dropped ones,
        and remember the plan's digest.

        Keys are content hashes, so an item already succeeded stays succeeded.
        """
        now = _now()
        has_refs = items.c.references_json != "[]"
        with self._begin() as conn:
            # Only what can differ between two plans with the same key: labels,
            # order, and (for items with references) where the files are.
            stored = {
                row[0]: row[1:]
                for row in conn.execute(
                    sa.select(
                        items.c.key,
                        items.c.id,
                        items.c.active,
                        items.c.position,
                        items.c.prompt_id,
                        items.c.ref_label,
                        items.c.references_json,
                        items.c.vars_json,
                        sa.case((has_refs, items.c.request_json), else_=None),
                    ).where(items.c.job_id == job.id)
                )
            }
            known = {key: row[0] for key, row in stored.items()}
            fresh = [i for i in plan_items if i.key not in known]
            labels = _Labeller()
            if fresh:
                rows = [
                    {
                        "job_id": job.id,
                        "key": i.key,
                        "active": 1,
                        "status": "pending",
                        "attempts": 0,
                        "tries_used": 0,
                        "unknown_used": 0,
                        "created_at": now,
                        "updated_at": now,
                        **labels(i),
                    }
                    for i in fresh
                ]
                _insert_many(conn, items, rows)
            existing = [i for i in plan_items if i.key in known]
            changed = [i for i in existing if labels.view(i) != stored[i.key][1:]]
            if changed:
                conn.execute(
                    items.update()
                    .where(items.c.id == sa.bindparam("_id"))
                    .values(
                        active=1,
                        **{
                            name: sa.bindparam("_" + name)
                            for name in labels(changed[0])
                        },
                    ),
                    [
                        {
                            "_id": known[i.key],
                            **{"_" + k: v for k, v in labels(i).items()},
                        }
                        for i in changed
                    ],
                )
            wanted = {i.key for i in plan_items}
            dropped = [item_id for key, item_id in known.items() if key not in wanted]
            for chunk in _chunks(dropped, 500):
                conn.execute(
                    items.update().where(items.c.id.in_(chunk)).values(active=0)
                )
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job.id)
                .values(updated_at=now, plan_digest=digest)
            )
        return SyncResult(
            new=len(fresh), existing=len(existing), deactivated=len(dropped)
        )

    def plan_digest(self, job: JobRow) -> str | None:
        """The digest of the plan last stored for this job."""
        with self._connect() as conn:
            value = conn.execute(
                sa.select(jobs.c.plan_digest).where(jobs.c.id == job.id)
            ).scalar()
        return None if value is None else str(value)

    def unfinished(self, job: JobRow) -> list[tuple[str, int, str | None]]:
        """(prompt, reference count, image size) of each item still to send."""
        with self._connect() as conn:
            rows = conn.execute(
                sa.select(
                    items.c.prompt, items.c.references_json, items.c.image_size
                ).where(
                    items.c.job_id == job.id,
                    items.c.active == 1,
                    items.c.status.in_(("pending", "running")),
                )
            ).all()
        return [(p, len(json.loads(r)), size) for p, r, size in rows]

    def statuses_of(self, job: JobRow, keys: Iterable[str]) -> dict[str, str]:
        """key -> status of the given keys the store already has."""
        with self._connect() as conn:
            rows = conn.execute(
                sa.select(items.c.key, items.c.status).where(items.c.job_id == job.id)
            ).all()
        wanted = set(keys)
        return {k: s for k, s in rows if k in wanted}

    # -- runs and dispatch -----------------------------------------------------------

    def start_run(self, job: JobRow, command: str) -> int:
        with self._begin() as conn:
            result = conn.execute(
                runs.insert().values(
                    job_id=job.id,
                    command=command,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    started_at=_now(),
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def end_run(self, run_id: int, result: str) -> None:
        with self._begin() as conn:
            conn.execute(
                runs.update()
                .where(runs.c.id == run_id)
                .values(ended_at=_now(), result=result)
            )

    def recover_abandoned(self, job: JobRow) -> int:
        """Items a dead run left `running` become pending; their open attempts are
        closed as `abandoned` (the request may have been sent and billed). Call only
        while holding the job's lease."""
        now = _now()
        with self._begin() as conn:
            running_ids = [
                r.id
                for r in conn.execute(
                    sa.select(items.c.id).where(
                        items.c.job_id == job.id, items.c.status == "running"
                    )
                )
            ]
            for chunk in _chunks(running_ids, 500):
                open_attempts = (
                    sa.select(items.c.image_size, sa.func.count())
                    .join(items, items.c.id == attempts.c.item_id)
                    .where(attempts.c.item_id.in_(chunk), attempts.c.ended_at.is_(None))
                    .group_by(items.c.image_size)
                )
                for size, n in conn.execute(open_attempts).all():
                    _add_totals(
                        conn,
                        job.id,
                        size,
                        attempts=n,
                        requests=n,
                        unknown=n,
                        unpriced=n,
                    )
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

    def requeue(self, job: JobRow, statuses: Sequence[str]) -> int:
        """Put items with these statuses back to pending, with fresh tries."""
        with self._begin() as conn:
            result = conn.execute(
                items.update()
                .where(
                    items.c.job_id == job.id,
                    items.c.active == 1,
                    items.c.status.in_(statuses),
                )
                .values(
                    status="pending", tries_used=0, unknown_used=0, updated_at=_now()
                )
            )
            return int(result.rowcount)

    def pending_items(self, job: JobRow) -> list[WorkItem]:
        with self._connect() as conn:
            rows = conn.execute(
                sa.select(
                    items.c.id,
                    items.c.key,
                    items.c.prompt_id,
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

    def begin_attempt(self, item_id: int, run_id: int, number: int) -> int:
        """Record that a request is about to go out; the item becomes `running`."""
        attempt_id = self.record_attempts([AttemptStart(item_id, run_id, number)])[0]
        assert attempt_id is not None
        return attempt_id

    def finish_attempt(
        self, attempt_id: int, item_id: int, result: AttemptResult
    ) -> None:
        """Close an attempt, move its item and add to the job's totals, in one
        transaction."""
        self.record_attempts([AttemptEnd(attempt_id, item_id, result)])

    def record_attempts(
        self, changes: Sequence[AttemptStart | AttemptEnd]
    ) -> list[int | None]:
        """Begin and finish attempts, in order, in one transaction; the new
        attempt's id for each AttemptStart (None for an AttemptEnd).

        A run sends its changes in batches: one transaction for many attempts
        costs little more than one for a single attempt. (Statements are built once,
        at import: building them per call cost more CPU than running them.)"""
        now = _now()
        starts = [c for c in changes if isinstance(c, AttemptStart)]
        ends = [c for c in changes if isinstance(c, AttemptEnd)]
        with self._begin() as conn:
            started = _start_attempts(conn, starts, now)
            if ends:
                _end_attempts(conn, ends, now)
        new_ids = iter(started)
        return [next(new_ids) if isinstance(c, AttemptStart) else None for c in changes]

    # -- reading ----------------------------------------------------------------------

    def status(self, job: JobRow, by: Sequence[str] = ()) -> Status:
        """Counts, usage and spend of a job; also grouped by each axis in `by`
        (that part sums every attempt, so it is only done when asked)."""
        with self._connect() as conn:
            status = read_status(_query(conn), job)
            by_axis: dict[str, dict[str, dict[str, Any]]] = {}
            for axis in by:
                column = AXIS_COLUMNS[axis]
                groups: dict[str, dict[str, Any]] = {}
                for row in conn.execute(
                    sa.select(column, items.c.status, sa.func.count())
                    .where(items.c.job_id == job.id, items.c.active == 1)
                    .group_by(column, items.c.status)
                ):
                    entry = groups.setdefault(_label(row[0]), _empty_group())
                    entry["items"] += row[2]
                    entry[row[1]] += row[2]
                for value, spend in self._spend_rows(conn, job, column):
                    groups.setdefault(_label(value), _empty_group())["spend"] = spend
                by_axis[axis] = groups
        return replace(status, by_axis=by_axis)

    def spend(self, job: JobRow) -> Spend:
        """What the job's attempts used so far (every run, every item)."""
        with self._connect() as conn:
            return self._totals(conn, job)

    def _totals(self, conn: Connection, job: JobRow) -> Spend:
        return read_spend(_query(conn), job)

    def _spend_rows(
        self, conn: Connection, job: JobRow, column: Any
    ) -> list[tuple[Any, Spend]]:
        """Spend of the job's attempts grouped by an item column (`status --by`):
        summed from the attempts themselves, so it is only done when asked."""
        possibly_paid = attempts.c.outcome.in_(POSSIBLY_PAID)
        not_sent = sa.and_(
            attempts.c.outcome.in_(("transient", "not_sent")),
            attempts.c.http_status.is_(None),
        )
        billed_failure = sa.and_(
            attempts.c.total_tokens > 0, attempts.c.outcome != "success"
        )
        sums = sa.select(
            column,
            sa.func.count(),
            sa.func.sum(sa.case((not_sent, 1), else_=0)),
            sa.func.sum(sa.case((possibly_paid, 1), else_=0)),
            sa.func.sum(sa.case((billed_failure, 1), else_=0)),
            sa.func.sum(attempts.c.images),
            *(sa.func.sum(attempts.c[name]) for name in TOKEN_COLUMNS),
        )
        # Possibly-paid attempts with no usage are priced by estimate, by size.
        unpriced_q = sa.select(column, items.c.image_size, sa.func.count()).where(
            possibly_paid, attempts.c.total_tokens == 0
        )
        unpriced: dict[Any, dict[str | None, int]] = {}
        for group, size, n in conn.execute(
            _of_job(unpriced_q, job).group_by(column, items.c.image_size)
        ):
            unpriced.setdefault(group, {})[size] = n
        result = []
        for group, *values in conn.execute(_of_job(sums, job).group_by(column)):
            n, not_sent_n, unknown_n, paid_failed, images, *tokens = (
                int(v or 0) for v in values
            )
            spend = Spend(
                attempts=n,
                requests=n - not_sent_n,
                unknown=unknown_n,
                paid_failed=paid_failed,
                images=images,
                tokens=dict(zip(TOKEN_COLUMNS, tokens, strict=True)),
                unpriced=unpriced.get(group, {}),
            )
            result.append((group, spend))
        return result

    def manifest_rows(self, job: JobRow) -> list[dict[str, Any]]:
        """One dict per active item, in plan order, with the SPEC manifest fields."""
        with self._connect() as conn:
            rows = conn.execute(
                sa.select(items)
                .where(items.c.job_id == job.id, items.c.active == 1)
                .order_by(items.c.position)
            ).all()
        return [
            {
                "key": r.key,
                "status": r.status,
                "prompt_id": r.prompt_id,
                "prompt": r.prompt,
                "vars": json.loads(r.vars_json),
                "aspect_ratio": r.aspect_ratio,
                "image_size": r.image_size,
                "references": json.loads(r.references_json),
                "ref_set": r.ref_label,
                "sample": r.sample,
                "outputs": json.loads(r.outputs_json) if r.outputs_json else [],
                "attempts": r.attempts,
                "usage": json.loads(r.usage_json) if r.usage_json else None,
                "finish_reason": r.finish_reason,
                "error": r.error,
            }
            for r in rows
        ]

    def attempt_rows(self, job: JobRow) -> list[dict[str, Any]]:
        with self._connect() as conn:
            rows = conn.execute(
                sa.select(attempts, items.c.key)
                .join(items, items.c.id == attempts.c.item_id)
                .where(items.c.job_id == job.id)
                .order_by(attempts.c.id)
            ).all()
        return [dict(r._mapping) for r in rows]

    # -- plumbing ---------------------------------------------------------------------

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        # One writer at a time inside this process; across processes SQLite
        # serialises writers with BEGIN IMMEDIATE and busy_timeout.
        with self._lock:
            try:
                with (
                    self.engine.connect().execution_options(
                        **{_IMMEDIATE: True}
                    ) as conn,
                    conn.begin(),
                ):
                    yield conn
            except DBAPIError as exc:
                raise StoreError(
                    f"the store {_safe_url(self.url)} failed: {_db_reason(exc)}"
                ) from exc

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except DBAPIError as exc:
            raise StoreError(
                f"the store {_safe_url(self.url)} failed: {_db_reason(exc)}"
            ) from exc

    def _migrate(self) -> None:
        known = [name for name, _ in MIGRATIONS]
        with self._begin() as conn:
            migrations_table.create(conn, checkfirst=True)
            done = {r.name for r in conn.execute(sa.select(migrations_table.c.name))}
        newer = sorted(done - set(known))
        if newer:
            raise StoreError(
                f"the store {_safe_url(self.url)} was written by a newer runner "
                f"(schema step {newer[-1]}); upgrade runner, or use another --output"
            )
        for name, migration in MIGRATIONS:
            if name in done:
                continue
            # Each step in its own transaction; re-checked inside it, since another
            # process may be migrating the same file right now.
            with self._begin() as conn:
                applied = conn.execute(
                    sa.select(migrations_table.c.name).where(
                        migrations_table.c.name == name
                    )
                ).first()
                if applied is None:
                    migration(conn)
                    conn.execute(
                        migrations_table.insert().values(name=name, applied_at=_now())
                    )


def m001_initial(conn: Connection) -> None:
    metadata.create_all(conn, tables=[jobs, items, runs, attempts, job_totals])


MIGRATIONS = [("m001_initial", m001_initial)]
# A new step goes in records.MIGRATION_NAMES too: the status reader checks a store
# against that list.
assert tuple(name for name, _ in MIGRATIONS) == MIGRATION_NAMES, MIGRATION_NAMES


def _query(conn: Connection) -> Query:
    """Run records' SQL text on this connection."""

    def run(sql: str, params: Mapping[str, Any]) -> Iterable[Sequence[Any]]:
        return conn.execute(sa.text(sql), params)

    return run


def _of_job(query: sa.Select[Any], job: JobRow) -> sa.Select[Any]:
    """`query` over the attempts of one job's items."""
    return query.join_from(attempts, items, items.c.id == attempts.c.item_id).where(
        items.c.job_id == job.id
    )


def _label(value: Any) -> str:
    return "(default)" if value is None else str(value)


def _empty_group() -> dict[str, Any]:
    return {"items": 0, **dict.fromkeys(STATUSES, 0), "spend": Spend()}


# The hot path's statements, built once (see finish_attempt).
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
    )
)
_ITEMS_JOB_SIZE = sa.select(items.c.id, items.c.job_id, items.c.image_size).where(
    items.c.id.in_(sa.bindparam("p_item_ids", expanding=True))
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
            for name in COUNTER_COLUMNS + TOKEN_COLUMNS
        }
    )
)


def _params(**values: Any) -> dict[str, Any]:
    """Bind parameters of the prebuilt statements (named p_*: SQLAlchemy reserves
    column names for the SET clause)."""
    return {"p_" + name: value for name, value in values.items()}


def _start_attempts(
    conn: Connection, starts: Sequence[AttemptStart], now: str
) -> list[int]:
    """Items become `running`, each with a new attempt; the attempts' ids."""
    if not starts:
        return []
    conn.execute(
        _ITEM_RUNNING,
        [_params(item_id=c.item_id, number=c.number, now=now) for c in starts],
    )
    ids = []
    for change in starts:
        key = conn.execute(
            _ATTEMPT_START,
            _params(
                item_id=change.item_id,
                run_id=change.run_id,
                number=change.number,
                now=now,
            ),
        ).inserted_primary_key
        assert key is not None
        ids.append(int(key[0]))
    return ids


def _end_attempts(conn: Connection, ends: Sequence[AttemptEnd], now: str) -> None:
    """Close the attempts, move their items and add to their jobs' totals (each
    statement run once for the whole batch)."""
    attempt_rows = []
    item_rows = []
    for change in ends:
        result = change.result
        usage = None if result.usage is None else json.dumps(result.usage)
        outputs = json.dumps(list(result.outputs)) if result.outputs else None
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
            )
        )
        item_rows.append(
            _params(
                item_id=change.item_id,
                status=result.item_status,
                now=now,
                finish_reason=result.finish_reason,
                error=None if succeeded else result.reason,
                try_inc=int(result.counts_as_try),
                unknown_inc=int(result.counts_as_unknown),
                succeeded=int(succeeded),
                outputs_json=outputs,
                usage_json=usage,
            )
        )
    conn.execute(_ATTEMPT_END, attempt_rows)
    conn.execute(_ITEM_END, item_rows)
    item_ids = sorted({c.item_id for c in ends})
    where: dict[int, tuple[int, str | None]] = {
        item_id: (job_id, size)
        for item_id, job_id, size in conn.execute(
            _ITEMS_JOB_SIZE, {"p_item_ids": item_ids}
        )
    }
    totals: dict[tuple[int, str | None], dict[str, int]] = {}
    for change in ends:
        deltas = _attempt_totals(change.result)
        into = totals.setdefault(where[change.item_id], dict.fromkeys(deltas, 0))
        for name, value in deltas.items():
            into[name] += value
    for (job_id, size), deltas in totals.items():
        _add_totals(conn, job_id, size, **deltas)


def _attempt_totals(result: AttemptResult) -> dict[str, int]:
    """What one attempt adds to its job's running totals."""
    tokens = billed_tokens(result.usage)
    sent = not (
        result.outcome in ("transient", "not_sent") and result.http_status is None
    )
    possibly_paid = result.outcome in POSSIBLY_PAID
    return {
        "attempts": 1,
        "requests": int(sent),
        "unknown": int(possibly_paid),
        "unpriced": int(possibly_paid and not tokens["total_tokens"]),
        "paid_failed": int(
            bool(tokens["total_tokens"]) and result.outcome != "success"
        ),
        "images": len(result.outputs),
        **tokens,
    }


def _add_totals(
    conn: Connection, job_id: int, image_size: str | None, **deltas: int
) -> None:
    size = image_size or ""
    params = {
        "d_" + name: deltas.get(name, 0) for name in COUNTER_COLUMNS + TOKEN_COLUMNS
    }
    done = conn.execute(_TOTALS_ADD, _params(job_id=job_id, size=size, **params))
    if done.rowcount == 0:
        zero = dict.fromkeys(COUNTER_COLUMNS + TOKEN_COLUMNS, 0)
        conn.execute(
            job_totals.insert().values(
                job_id=job_id, image_size=size, **{**zero, **deltas}
            )
        )


class _Labeller:
    """An item's descriptive columns, for many items: the JSON of vars and
    reference lists, shared by whole rows of a grid, is encoded once per value."""

    def __init__(self) -> None:
        self._vars: dict[tuple[tuple[str, str], ...], str] = {}
        self._refs: dict[tuple[str, ...], str] = {}

    def __call__(self, item: Item) -> dict[str, Any]:
        return {
            "position": item.position,
            "prompt_id": item.prompt_id,
            "prompt": item.prompt,
            "vars_json": self._vars_json(item),
            "aspect_ratio": item.aspect_ratio,
            "image_size": item.image_size,
            "ref_label": item.ref_label,
            "references_json": self._refs_json(item),
            "sample": item.sample,
            "request_json": item.request.to_json(),
        }

    def view(self, item: Item) -> tuple[Any, ...]:
        """The item as sync_plan's query reads it back, to spot rows that changed
        (the request JSON only where it holds reference paths)."""
        return (
            1,
            item.position,
            item.prompt_id,
            item.ref_label,
            self._refs_json(item),
            self._vars_json(item),
            item.request.to_json() if item.reference_paths else None,
        )

    def _vars_json(self, item: Item) -> str:
        key = tuple(item.vars.items())
        encoded = self._vars.get(key)
        if encoded is None:
            encoded = self._vars[key] = json.dumps(dict(item.vars), ensure_ascii=False)
        return encoded

    def _refs_json(self, item: Item) -> str:
        paths = item.reference_paths
        encoded = self._refs.get(paths)
        if encoded is None:
            encoded = self._refs[paths] = json.dumps(list(paths), ensure_ascii=False)
        return encoded


def _insert_many(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """executemany; on SQLite straight through the driver, since SQLAlchemy's
    per-row parameter handling costs as much as the insert itself at 100k rows."""
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(table.insert(), rows)
        return
    names = list(rows[0])
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) "
        f"VALUES ({', '.join('?' for _ in names)})"
    )
    conn.exec_driver_sql(sql, [tuple(row[n] for n in names) for row in rows])


_IMMEDIATE = "runner_begin_immediate"


def _sqlite_setup(engine: Engine, busy_timeout: float) -> None:
    """WAL, and BEGIN IMMEDIATE for write transactions: a deferred transaction that
    reads and then writes fails at once with SQLITE_BUSY in WAL mode when another
    process wrote meanwhile, instead of waiting out busy_timeout."""

    @event.listens_for(engine, "connect")
    def connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        _enter_wal(cursor, busy_timeout)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _enter_wal(cursor: Any, busy_timeout: float) -> None:
    """Switch a new database to WAL. Processes opening the same blank file at once
    race for the switch, and SQLite may answer "database is locked" at once rather
    than wait (a busy handler there could deadlock): try again until busy_timeout."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01 + random.random() * 0.04)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _chunks(values: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _safe_url(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return "(unparseable URL)"


def _db_reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    reason = str(orig) if orig is not None else type(exc).__name__
    if "locked" in reason or "busy" in reason:
        reason += (
            " (another program holds it locked; wait for it to finish, or use "
            "another --output)"
        )
    elif "not a database" in reason or "malformed" in reason:
        reason += (
            " (the file is damaged or is not a runner store; move it aside and "
            "submit again, or point --output elsewhere)"
        )
    return reason
