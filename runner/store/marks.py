"""Marks on images: star, reject and a note per image of an item (SPEC 6).

Owns: the `marks` table's reads and writes: which images a job has to mark, setting
and clearing marks (a row goes when its mark and note are both gone), marks by
item and by mark, and which stale items keep their place because an image of
theirs is marked. Works inside a connection or transaction its caller opened;
must not touch files or resolve the names a user types.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from runner.store.engine import chunks
from runner.store.records import Keep, Mark
from runner.store.schema import items, marks, timestamp

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from sqlalchemy.engine import Connection
    from sqlalchemy.sql import ColumnElement

    from runner.store.records import JobRow


@dataclass(frozen=True, slots=True)
class ItemImages:
    """An item that has images, as a user names them."""

    item_id: int
    key: str
    outputs: tuple[str, ...]  # relative to the job folder, as the manifest has them


def images_of(conn: Connection, job: JobRow) -> list[ItemImages]:
    """The job's items with images, in plan order: the active ones, then the stale
    ones (whose marks keep them from `runner prune` until cleared)."""
    rows = conn.execute(
        sa.select(items.c.id, items.c.key, items.c.outputs_json)
        .where(items.c.job_id == job.id, items.c.outputs_json.is_not(None))
        .order_by(items.c.active.desc(), items.c.position)
    )
    found = [ItemImages(i, key, tuple(json.loads(o))) for i, key, o in rows]
    return [f for f in found if f.outputs]


def set_marks(
    conn: Connection,
    job: JobRow,
    targets: Sequence[tuple[int, str]],
    mark: str | None | Keep,
    note: str | None | Keep,
) -> list[Mark]:
    """Set (or with None clear) the mark and the note of each (item id, image);
    KEEP leaves one as it is, an empty note is no note. The marks as they are now,
    one per target in order (mark and note None where nothing is left)."""
    wanted = list(dict.fromkeys(targets))
    ids = sorted({item_id for item_id, _ in wanted})
    keys: dict[int, str] = {}
    current: dict[tuple[int, str], tuple[str | None, str | None, str]] = {}
    for chunk in chunks(ids, 500):
        for item_id, key in conn.execute(
            sa.select(items.c.id, items.c.key).where(
                items.c.job_id == job.id, items.c.id.in_(chunk)
            )
        ):
            keys[item_id] = key
        for item_id, image, old_mark, old_note, at in conn.execute(
            sa.select(
                marks.c.item_id,
                marks.c.image,
                marks.c.mark,
                marks.c.note,
                marks.c.updated_at,
            ).where(marks.c.item_id.in_(chunk))
        ):
            current[(item_id, image)] = (old_mark, old_note, at)
    unknown = [i for i in ids if i not in keys]
    if unknown:
        raise ValueError(f"items {unknown} are not items of job {job.name}")
    now = timestamp()
    result = []
    for item_id, image in wanted:
        old = current.get((item_id, image))
        old_mark, old_note, at = old if old is not None else (None, None, now)
        new_mark = old_mark if isinstance(mark, Keep) else mark
        new_note = old_note if isinstance(note, Keep) else (note or None)
        where = sa.and_(marks.c.item_id == item_id, marks.c.image == image)
        if (new_mark, new_note) != (old_mark, old_note):
            at = now
            if new_mark is None and new_note is None:
                conn.execute(marks.delete().where(where))
            elif old is None:
                conn.execute(
                    marks.insert().values(
                        item_id=item_id,
                        image=image,
                        mark=new_mark,
                        note=new_note,
                        updated_at=at,
                    )
                )
            else:
                conn.execute(
                    marks.update()
                    .where(where)
                    .values(mark=new_mark, note=new_note, updated_at=at)
                )
        result.append(Mark(keys[item_id], image, new_mark, new_note, at))
    return result


def job_marks(
    conn: Connection, job: JobRow, which: Iterable[str | None] | None = None
) -> list[Mark]:
    """The marks on images of the job's active items, in plan order; only those
    whose mark is in `which` (None there: a note only) when it is given."""
    query = (
        sa.select(
            items.c.key, marks.c.image, marks.c.mark, marks.c.note, marks.c.updated_at
        )
        .join_from(marks, items, items.c.id == marks.c.item_id)
        .where(items.c.job_id == job.id, items.c.active == 1)
        .order_by(items.c.position, marks.c.image)
    )
    if which is not None:
        chosen = set(which)
        named = [m for m in chosen if m is not None]
        condition: ColumnElement[bool] = marks.c.mark.in_(named)
        if None in chosen:
            condition = sa.or_(condition, marks.c.mark.is_(None))
        query = query.where(condition)
    return [Mark(*row) for row in conn.execute(query)]


def marks_by_key(conn: Connection, job: JobRow) -> dict[str, dict[str, Mark]]:
    """item key -> image -> its mark, for the job's active items."""
    found: dict[str, dict[str, Mark]] = {}
    for mark in job_marks(conn, job):
        found.setdefault(mark.key, {})[mark.image] = mark
    return found


def marked_items() -> sa.Select[tuple[int]]:
    """The ids of items with at least one marked image (a subquery)."""
    return sa.select(marks.c.item_id).distinct()


def marked_stale(conn: Connection, job: JobRow) -> int:
    """Stale items `runner prune` keeps: an image of theirs is marked."""
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(
                items.c.job_id == job.id,
                items.c.active == 0,
                items.c.id.in_(marked_items()),
            )
        ).scalar_one()
    )


def drop_marks(conn: Connection, item_ids: Iterable[int]) -> int:
    """Delete every mark on these items' images; how many went."""
    dropped = 0
    for chunk in chunks(sorted(set(item_ids)), 500):
        dropped += conn.execute(
            marks.delete().where(marks.c.item_id.in_(chunk))
        ).rowcount
    return dropped
