"""Building a job's review: its model from the store, the page, the whole build.

Owns `build_review` (everything from the store and the files on disk, keeping what
is up to date), and the parts the review during a run (`live`) shares with it: the
`Model` (entries, grids, sheets, legend) loaded once, `refresh` (the rows of some
items read again), `plan_all` (every sheet's pages, stale ones removed) and
`write_gallery` (gallery-data.js, then index.html). Must not write anything but
what the package docstring lists.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runner.review.data import DATA_FILE, render_data
from runner.review.grid import build_entries, build_grids
from runner.review.legend import reference_legend
from runner.review.page import INDEX, render_page, write_page
from runner.review.sheets import (
    ContactSheet,
    SheetGroup,
    draw_sheets,
    first_pages,
    plan_group,
    remove_stale_sheets,
    sheet_groups,
)
from runner.review.thumbnails import make_reference_thumbnails, make_thumbnails

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence
    from pathlib import Path

    from runner.review.grid import Entry, Grid
    from runner.review.legend import ReferenceSet
    from runner.review.sheets import Page
    from runner.store import JobRow, Store


@dataclass(frozen=True, slots=True)
class Review:
    """What `build_review` (or a run's `LiveReview.finish`) left in the job folder."""

    index: Path
    data: Path  # gallery-data.js
    contact_sheets: tuple[Path, ...]
    thumbnails: int  # items shown with a thumbnail
    thumbnails_made: int  # of those, thumbnails made or remade by this build
    sheets: tuple[ContactSheet, ...]
    index_written: bool  # False when index.html and its data were already identical
    seconds: Mapping[str, float]  # wall time of each stage, for progress and benches
    # Made while the run went on (LiveReview only): thumbnails, sheet pages drawn.
    during_run: Mapping[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Model:
    """A job as the review shows it: one entry per item, one grid per prompt, its
    sheets and its reference sets."""

    entries: list[Entry]
    grids: list[Grid]
    legend: list[ReferenceSet]
    by_key: dict[str, Entry]
    groups: dict[str, SheetGroup]  # by key, in sheet order
    sheet_of: dict[str, str]  # prompt id -> the key of the sheet showing it
    taken: set[str]  # the prompts' first page names (see sheets.plan_group)


@dataclass(frozen=True, slots=True)
class Written:
    index: Path
    data: Path
    written: bool  # False when both were already identical


class Laps:
    """Wall time of consecutive stages."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._clock = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = now - self._clock
        self._clock = now


def build_review(store: Store, job: JobRow, job_folder: Path) -> Review:
    """(Re)build `index.html`, `thumbs/` and `contact/` for one job.

    Reads the store and the images; writes only under `job_folder`. Safe to call
    after every run: work already done is skipped.
    """
    clock = Laps()
    model = load_model(store, job)
    clock.lap("store")
    made = make_thumbnails(job_folder, model.entries)
    make_reference_thumbnails(job_folder, model.legend)
    clock.lap("thumbnails")
    # The page before the sheets: the gallery is usable while they are drawn.
    pages = [p for group in plan_all(job_folder, model).values() for p in group]
    sheets = [p.sheet for p in pages]
    written = write_gallery(store, job, job_folder, model, sheets)
    clock.lap("index")
    draw_sheets(pages)
    clock.lap("contact_sheets")
    return Review(
        index=written.index,
        data=written.data,
        contact_sheets=tuple(s.path for s in sheets),
        thumbnails=sum(1 for e in model.entries if e.thumb is not None),
        thumbnails_made=made,
        sheets=tuple(sheets),
        index_written=written.written,
        seconds=clock.seconds,
    )


def load_model(store: Store, job: JobRow) -> Model:
    """The job's entries (thumbnails not looked at yet), grids, sheets, legend."""
    rows = _slim(store.manifest_rows(job))
    entries = build_entries(rows, store.attempt_usage(job))
    grids = build_grids(entries)
    groups = {group.key: group for group in sheet_groups(grids)}
    return Model(
        entries=entries,
        grids=grids,
        legend=reference_legend(store.reference_sets(job)),
        by_key={str(e.row["key"]): e for e in entries},
        groups=groups,
        sheet_of={
            g.prompt_id: key for key, group in groups.items() for g in group.grids
        },
        taken=first_pages(grids),
    )


def refresh(
    store: Store, job: JobRow, model: Model, item_ids: Collection[int]
) -> list[Entry]:
    """Read these items' rows again into their entries; returns those entries. An
    entry whose image changed loses its thumbnail (and note) until it is made."""
    rows = _slim(store.manifest_rows(job, item_ids))
    fresh = build_entries(rows, store.attempt_usage(job, item_ids))
    updated = []
    for new in fresh:
        entry = model.by_key.get(str(new.row["key"]))
        if entry is None:  # not in the plan this model was loaded with
            continue
        if new.image != entry.image:
            entry.image, entry.thumb, entry.thumb_mtime = new.image, None, 0
            entry.note = None
        entry.row, entry.tokens, entry.grounding = new.row, new.tokens, new.grounding
        updated.append(entry)
    return updated


def _slim(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Manifest rows without what the review never shows: `usage` (the success's
    usageMetadata; tokens come from every attempt's) is half a row's memory, and a
    run keeps 100,000 rows for its whole length."""
    for row in rows:
        row.pop("usage", None)
    return rows


def plan_all(job_folder: Path, model: Model) -> dict[str, list[Page]]:
    """Every sheet's pages by sheet key, each `written` unless its file is up to
    date; removes the files of sheets the job no longer has."""
    pages = {
        key: plan_group(job_folder, group, model.legend, model.taken)
        for key, group in model.groups.items()
    }
    remove_stale_sheets(job_folder, list(model.groups.values()), pages)
    return pages


def write_gallery(
    store: Store,
    job: JobRow,
    job_folder: Path,
    model: Model,
    sheets: Sequence[ContactSheet],
) -> Written:
    """gallery-data.js, then index.html (a page is never on disk without the data
    it names); each only if its content changed."""
    data_path, index = job_folder / DATA_FILE, job_folder / INDEX
    children = store.children_of(job)  # other jobs' items derived from this one's
    data = render_data(
        job.name, model.grids, model.entries, sheets, model.legend, children=children
    )
    written = write_page(data_path, data)
    page = render_page(job, store.status(job), len(model.grids), model.legend, data)
    written = write_page(index, page) or written
    return Written(index, data_path, written)
