"""What the store reports: jobs, status and spend (also per axis), manifest and
attempt rows, and each reference set's files.

Owns: the read queries through SQLAlchemy. The job lookup and the status totals run
`records`' SQL text, the same the sqlite3 `reader` runs, so both answer alike; spend
per axis value is summed from the attempts by the rule in `attempts`. Works on a
connection its caller opened; must not write.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from runner.store.attempts import summed_totals
from runner.store.marks import marks_by_key
from runner.store.records import (
    BATCH_COLUMNS,
    COUNTER_COLUMNS,
    COUNTS_SQL,
    STATUSES,
    TOKEN_COLUMNS,
    JobSummary,
    RecordedUsage,
    Spend,
    counts_from_rows,
    read_job,
    read_spend,
    read_status,
    spend_from_rows,
)
from runner.store.schema import AXIS_COLUMNS, attempts, items, jobs

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping, Sequence

    from sqlalchemy.engine import Connection

    from runner.store.records import JobRow, Mark, Query, Status, UsageKey


def get_job(conn: Connection, name: str) -> JobRow | None:
    return read_job(_query(conn), name)


def list_jobs(conn: Connection) -> list[JobSummary]:
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


def status(conn: Connection, job: JobRow, by: Sequence[str]) -> Status:
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
        for value, spend in spend_by(conn, job, column):
            groups.setdefault(_label(value), _empty_group())["spend"] = spend
        by_axis[axis] = groups
    return replace(status, by_axis=by_axis)


def counts(conn: Connection, job: JobRow) -> dict[str, int]:
    return counts_from_rows(_query(conn)(COUNTS_SQL, {"job_id": job.id}))


def spend(conn: Connection, job: JobRow) -> Spend:
    return read_spend(_query(conn), job)


def spend_by(conn: Connection, job: JobRow, column: Any) -> list[tuple[Any, Spend]]:
    """Spend of the job's attempts grouped by an item column (`status --by`):
    summed from the attempts themselves, so it is only done when asked. Counts the
    attempts still open too, as requests sent."""
    # Per value and image size, shaped like the running totals' rows: the unpriced
    # attempts are priced by estimate, by size.
    rows: dict[Any, list[tuple[Any, ...]]] = {}
    totals = summed_totals(conn, job, [column, items.c.image_size])
    for (value, size), sums in totals.items():
        row = (
            size,
            *(sums[name] for name in COUNTER_COLUMNS + TOKEN_COLUMNS + BATCH_COLUMNS),
        )
        rows.setdefault(value, []).append(row)
    return [(value, spend_from_rows(group)) for value, group in rows.items()]


def recorded_usage(conn: Connection, job: JobRow) -> dict[UsageKey, RecordedUsage]:
    """What the job's billed answers used, per (model, image size, reference
    count): one row per group, however many attempts, read once per command."""
    a = attempts.c
    model = sa.func.json_extract(items.c.request_json, "$.model")
    refs = sa.func.json_array_length(items.c.references_json)
    success = a.images > 0

    def of_successes(column: Any) -> Any:
        return sa.func.sum(sa.case((success, column), else_=0))

    query = (
        sa.select(
            model,
            items.c.image_size,
            refs,
            of_successes(1),
            *(of_successes(a[name]) for name in TOKEN_COLUMNS),
            sa.func.max(a.prompt_tokens),
            sa.func.max(a.image_tokens),
            sa.func.max(a.candidates_tokens - a.image_tokens + a.thoughts_tokens),
            sa.func.max(a.images),
        )
        .join_from(attempts, items, items.c.id == a.item_id)
        # Simulated answers count toward no estimate and no cap (SPEC 5).
        .where(items.c.job_id == job.id, a.total_tokens != 0, a.simulated == 0)
        .group_by(model, items.c.image_size, refs)
    )
    found: dict[UsageKey, RecordedUsage] = {}
    for row in conn.execute(query):
        name, size, n_refs, answers, *rest = row
        sums, (prompt, image, text, most_images) = rest[:-4], rest[-4:]
        found[(name, size, int(n_refs))] = RecordedUsage(
            answers=int(answers),
            tokens={k: int(v) for k, v in zip(TOKEN_COLUMNS, sums, strict=True)},
            heaviest={
                "prompt_tokens": int(prompt),
                "image_tokens": int(image),
                "text_tokens": int(text),
            },
            most_images=int(most_images),
        )
    return found


def manifest_rows(
    conn: Connection, job: JobRow, item_ids: Collection[int] | None = None
) -> list[dict[str, Any]]:
    """The active items' manifest rows in plan order; with `item_ids`, only theirs."""
    query = sa.select(items).where(items.c.job_id == job.id, items.c.active == 1)
    rows: list[Any] = []
    for chunk in _id_chunks(item_ids):
        where = query if chunk is None else query.where(items.c.id.in_(chunk))
        rows += conn.execute(where.order_by(items.c.position)).all()
    if item_ids is not None:
        rows.sort(key=lambda r: r.position)
    marks = marks_by_key(conn, job)
    return [_manifest_row(r, marks.get(r.key, {})) for r in rows]


def attempt_usage(
    conn: Connection, job: JobRow, item_ids: Collection[int] | None = None
) -> list[dict[str, Any]]:
    """`key`, `total_tokens` and `usage_json` of the job's attempts that have usage
    (with `item_ids`, of those items only): what the review sums per item."""
    query = (
        sa.select(items.c.key, attempts.c.total_tokens, attempts.c.usage_json)
        .join(items, items.c.id == attempts.c.item_id)
        .where(items.c.job_id == job.id, attempts.c.usage_json.is_not(None))
    )
    rows: list[dict[str, Any]] = []
    for chunk in _id_chunks(item_ids):
        where = query if chunk is None else query.where(items.c.id.in_(chunk))
        rows += (dict(r._mapping) for r in conn.execute(where))
    return rows


def _id_chunks(item_ids: Collection[int] | None) -> list[list[int] | None]:
    """[None] (every item) or the ids in chunks a statement can bind."""
    if item_ids is None:
        return [None]
    ids = sorted(item_ids)
    return [ids[start : start + 500] for start in range(0, len(ids), 500)]


def item_requests(
    conn: Connection, job: JobRow, keys: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """item key -> the request its item sends (model, text, references with their
    paths and hashes, generation settings...), for these keys of the job."""
    found: dict[str, dict[str, Any]] = {}
    wanted = list(dict.fromkeys(keys))
    for start in range(0, len(wanted), 500):
        for key, request in conn.execute(
            sa.select(items.c.key, items.c.request_json).where(
                items.c.job_id == job.id, items.c.key.in_(wanted[start : start + 500])
            )
        ):
            found[key] = json.loads(request)
    return found


def _manifest_row(r: Any, marks: Mapping[str, Mark]) -> dict[str, Any]:
    simulated = r.status == "simulated"
    return {
        "key": r.key,
        "status": "succeeded" if simulated else r.status,
        "simulated": simulated,
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
        "grounding": json.loads(r.grounding_json) if r.grounding_json else None,
        # image -> {mark, note, updated_at}, for its marked images only (SPEC 6)
        "marks": {image: mark.as_dict() for image, mark in marks.items()},
        "parent": _parent(r),
    }


def _parent(r: Any) -> dict[str, str] | None:
    """A derived item's lineage: the parent job, item key and image (relative to
    that job's folder), and the mode; None for an item derived from nothing."""
    if r.parent_job is None:
        return None
    return {
        "job": r.parent_job,
        "key": r.parent_key,
        "image": r.parent_image,
        "mode": r.parent_mode,
    }


def reference_sets(conn: Connection, job: JobRow) -> dict[str, list[dict[str, Any]]]:
    """Each reference set's label (`r0`, ...) -> its files as one of its active items
    sent them (`path` as written, `abs_path`, `sha256`, ...), in set order; text-only
    sets have no entry. One row per set is read, not every item's request. A
    derived item's parent image, sent first (SPEC 6: `edit`), is no file of a set:
    each item has its own (the gallery's parent axis shows it)."""
    first = conn.execute(
        sa.select(items.c.ref_label, sa.func.min(items.c.id))
        .where(
            items.c.job_id == job.id,
            items.c.active == 1,
            items.c.references_json != "[]",
        )
        .group_by(items.c.ref_label)
    ).all()
    found: dict[str, list[dict[str, Any]]] = {}
    for label, item_id in first:
        request = conn.execute(
            sa.select(items.c.request_json).where(items.c.id == item_id)
        ).scalar_one()
        sent = json.loads(request)
        files = list(sent["references"])
        if files and sent.get("parent") and files[0].get("sha256") == sent["parent"]:
            files = files[1:]
        if files:
            found[str(label)] = files
    return found


def attempt_rows(conn: Connection, job: JobRow) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(attempts, items.c.key)
        .join(items, items.c.id == attempts.c.item_id)
        .where(items.c.job_id == job.id)
        .order_by(attempts.c.id)
    ).all()
    return [dict(r._mapping) for r in rows]


def _query(conn: Connection) -> Query:
    """Run records' SQL text on this connection."""

    def run(sql: str, params: Mapping[str, Any]) -> Iterable[Sequence[Any]]:
        return conn.execute(sa.text(sql), params)

    return run


def _label(value: Any) -> str:
    return "(default)" if value is None else str(value)


def _empty_group() -> dict[str, Any]:
    return {"items": 0, **dict.fromkeys(STATUSES, 0), "spend": Spend()}
