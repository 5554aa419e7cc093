"""A job and its plan in the store: the job row, and the items kept in step with a plan.

Owns: creating or refreshing a job, `sync_plan` (new items inserted in bulk, labels
of known items refreshed, dropped items deactivated, the plan's digest) and the
reads a submit makes about the stored plan before it runs. Works inside a
transaction or connection its caller opened; must not touch attempts or totals.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from runner.store.engine import chunks
from runner.store.records import JobRow
from runner.store.schema import items, jobs, timestamp

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from sqlalchemy.engine import Connection

    from runner.plan import Item


@dataclass(frozen=True, slots=True)
class SyncResult:
    new: int
    existing: int
    deactivated: int


def upsert_job(
    conn: Connection,
    name: str,
    job_path: str | None,
    model: str | None,
    settings: Mapping[str, Any] | None,
) -> JobRow:
    now = timestamp()
    settings = dict(settings or {})
    settings_json = json.dumps(settings, sort_keys=True)
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


def sync_plan(
    conn: Connection, job: JobRow, plan_items: Sequence[Item], digest: str | None
) -> SyncResult:
    now = timestamp()
    has_refs = items.c.references_json != "[]"
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
                *_LINEAGE,
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
                **{name: sa.bindparam("_" + name) for name in labels(changed[0])},
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
    for chunk in chunks(dropped, 500):
        conn.execute(items.update().where(items.c.id.in_(chunk)).values(active=0))
    conn.execute(
        jobs.update()
        .where(jobs.c.id == job.id)
        .values(updated_at=now, plan_digest=digest)
    )
    return SyncResult(new=len(fresh), existing=len(existing), deactivated=len(dropped))


def plan_digest(conn: Connection, job: JobRow) -> str | None:
    value = conn.execute(
        sa.select(jobs.c.plan_digest).where(jobs.c.id == job.id)
    ).scalar()
    return None if value is None else str(value)


def unfinished(
    conn: Connection, job: JobRow, statuses: Sequence[str]
) -> list[tuple[str, int, str | None]]:
    rows = conn.execute(
        sa.select(items.c.prompt, items.c.references_json, items.c.image_size).where(
            items.c.job_id == job.id,
            items.c.active == 1,
            items.c.status.in_(statuses),
        )
    ).all()
    return [(p, len(json.loads(r)), size) for p, r, size in rows]


def item_count(conn: Connection, job: JobRow, active: bool | None = None) -> int:
    """The job's items; only the active (or only the stale) ones if `active` says."""
    query = sa.select(sa.func.count()).where(items.c.job_id == job.id)
    if active is not None:
        query = query.where(items.c.active == int(active))
    return int(conn.execute(query).scalar_one())


def statuses_of(conn: Connection, job: JobRow, keys: Iterable[str]) -> dict[str, str]:
    rows = conn.execute(
        sa.select(items.c.key, items.c.status).where(items.c.job_id == job.id)
    ).all()
    wanted = set(keys)
    return {k: s for k, s in rows if k in wanted}


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
            **_lineage(item),
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
            *_lineage(item).values(),
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


# A derived item's parent (m005), NULL for others.
_LINEAGE = (
    items.c.parent_job,
    items.c.parent_key,
    items.c.parent_image,
    items.c.parent_mode,
)


def _lineage(item: Item) -> dict[str, str | None]:
    parent = item.parent
    return {
        "parent_job": None if parent is None else parent.job,
        "parent_key": None if parent is None else parent.key,
        "parent_image": None if parent is None else parent.image,
        "parent_mode": None if parent is None else item.mode,
    }


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
