"""A derived job's parent images as the store knows them (SPEC section 6).

Owns: `ParentImage` and the one selection a `from: marked:` makes among a job's
images: its succeeded images, its starred ones (once marks exist), or an explicit
list of image file names and item-key prefixes; each with what its item asked
(`request_json`) and the answer's kept parts. And the other way, `ChildItem`: the
items of other jobs derived from a job's images (the gallery lists them under
their parents). Works on a connection its caller opened; must not read image files
or know YAML.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

import sqlalchemy as sa

from runner.store.schema import attempts, items, jobs

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.engine import Connection

    from runner.store.records import JobRow


@dataclass(frozen=True, slots=True)
class ParentImage:
    """One image of the parent job, with its item."""

    key: str  # the item's
    image: str  # relative to the parent job's folder, as the manifest has it
    status: str  # the item's
    aspect_ratio: str
    prompt_id: str
    vars_json: str
    ref_label: str
    request_json: str  # what the item asked (runner.plan.Request)
    parts_json: str | None  # the answer's kept parts; None: not recorded

    @property
    def name(self) -> str:
        return PurePosixPath(self.image).name


@dataclass(frozen=True, slots=True)
class ChildItem:
    """An item of another job derived from an image of this one (SPEC 6)."""

    job: str  # the child's job
    key: str  # the child item's
    image: str | None  # the child's first image (its job's folder); None: none yet
    parent_key: str  # the parent item's
    parent_image: str  # relative to the parent job's folder
    mode: str  # edit, continue or rerender


def children_of(conn: Connection, job: JobRow) -> list[ChildItem]:
    """The current items of other jobs whose parent is an image of `job` (by name,
    as lineage records it), by job name, then in each job's plan order."""
    rows = conn.execute(
        sa.select(
            jobs.c.name,
            items.c.key,
            items.c.outputs_json,
            items.c.parent_key,
            items.c.parent_image,
            items.c.parent_mode,
        )
        .join_from(items, jobs, jobs.c.id == items.c.job_id)
        .where(
            items.c.parent_job == job.name,
            items.c.active == 1,
            items.c.job_id != job.id,
        )
        .order_by(jobs.c.name, items.c.position)
    )
    found = []
    for name, key, outputs, parent_key, parent_image, mode in rows:
        images = json.loads(outputs) if outputs else []
        image = str(images[0]) if images else None
        found.append(ChildItem(name, key, image, parent_key, parent_image, mode))
    return found


def parent_images(
    conn: Connection,
    job: JobRow,
    marked: str | Sequence[str],
    statuses: Sequence[str],
) -> list[ParentImage]:
    """The job's images `marked` selects, in plan order: "succeeded" or "star" (of
    items with these statuses),
    or a list of image file names and item-key prefixes (whatever the item's
    status: the caller says what is wrong with a name that is not usable)."""
    if marked == "star":
        starred = _starred(conn, job)
        return [
            image
            for image in _images(conn, job)
            if (image.key, image.image) in starred and image.status in statuses
        ]
    found = _images(conn, job)
    if isinstance(marked, str):
        return [image for image in found if image.status in statuses]
    names = {PurePosixPath(name).name for name in marked}
    prefixes = tuple(marked)
    return [
        image
        for image in found
        if image.name in names or image.key.startswith(prefixes)
    ]


def _starred(conn: Connection, job: JobRow) -> set[tuple[str, str]]:
    """(item key, image) of the job's starred images, from the marks table
    (m004_marks: one row per marked image of an item, `mark` 'star' or 'reject')."""
    rows = conn.execute(
        sa.text(
            "SELECT i.key, m.image FROM marks m JOIN items i ON i.id = m.item_id "
            "WHERE i.job_id = :job_id AND m.mark = 'star'"
        ),
        {"job_id": job.id},
    )
    return {(key, image) for key, image in rows}


def _images(conn: Connection, job: JobRow) -> list[ParentImage]:
    """Every image of the job's current items, with the parts of the answer that
    made it (the item's last attempt that brought images)."""
    answer_parts = (
        sa.select(attempts.c.parts_json)
        .where(attempts.c.item_id == items.c.id, attempts.c.images > 0)
        .order_by(attempts.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    rows = conn.execute(
        sa.select(
            items.c.key,
            items.c.outputs_json,
            items.c.status,
            items.c.aspect_ratio,
            items.c.prompt_id,
            items.c.vars_json,
            items.c.ref_label,
            items.c.request_json,
            answer_parts,
        )
        .where(
            items.c.job_id == job.id,
            items.c.active == 1,
            items.c.outputs_json.is_not(None),
        )
        .order_by(items.c.position)
    )
    found = []
    for key, outputs, *facts, parts in rows:
        status, ratio, prompt_id, vars_json, label, request = facts
        for image in json.loads(outputs):
            found.append(
                ParentImage(
                    key,
                    image,
                    status,
                    ratio,
                    prompt_id,
                    vars_json,
                    label,
                    request,
                    parts,
                )  # fmt: skip
            )
    return found
