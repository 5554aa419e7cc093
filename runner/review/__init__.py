"""Results review: the job folder's gallery page, thumbnails and contact sheets.

Owns: turning what the store knows about a job (manifest rows, status totals, attempt
usage) and the image files on disk into, under the job folder only,

    index.html              the page (inline CSS and JS, no network, works from
                            file://): rows = prompts, columns = the axes that vary,
                            filters, per-prompt comparison, job totals, the
                            reference-set legend, a grounded image's sources and
                            search suggestions, lineage (a derived item's parent,
                            an image's children in other jobs, linked); drawn a
                            screenful at a time from
    gallery-data.js         every item's data, compact (columns, string tables),
                            loaded by the page with <script src>
    thumbs/<image>.jpg      one JPEG per item's first image, THUMB_SIZE px at most
    thumbs/refs/<sha>.jpg   one per reference file, named by its content hash
    contact/<prompt>.png    one labelled grid per prompt (X/Y-plot style), with a
                            legend of the reference sets it uses; a grid too big
                            for one page continues in <prompt>_2.png, ...

Every file is written atomically (`outputs.write_atomic`) and only when its content
changed: a thumbnail newer than its image is kept, a contact sheet whose embedded
signature matches is kept, an identical index.html or gallery-data.js is not
rewritten. Nothing is
deleted except surplus pages of a contact sheet this package wrote earlier.

Must not write to the store, use the network, or touch files outside the job folder.

Memory stays bounded however large the job: a worker (at most WORKERS threads,
or this one for small amounts of work) holds one decoded image or one sheet page at
a time; JPEGs decode at reduced scale (`draft`); contact sheets are composed from the
thumbnails, never from full images; and a sheet page is at most SHEET_MAX_SIDE px on
a side and SHEET_MAX_PIXELS in all (32 Mpx, 96 MiB as RGB). A prompt whose grid would
be larger first gets smaller cells (down to SHEET_MIN_CELL) and is then split into
pages of whole rows (and of whole columns if even one row is too wide).

Modules: `grid` (entries and per-prompt grids from store rows), `grounding` (a
grounded image's sources and search suggestions), `legend` (reference sets),
`thumbnails`, `sheets` (contact sheets), `data` (gallery-data.js), `page`
(index.html, with the package data files gallery.css and gallery.js), `workers`
(the thread pool). Tunables are read from the
module that owns them (`sheets.SHEET_MAX_SIDE`, `workers.WORKERS`): change them there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner.review.data import DATA_FILE, render_data
from runner.review.grid import build_entries, build_grids
from runner.review.legend import reference_legend
from runner.review.page import INDEX, render_page, write_page
from runner.review.sheets import (
    PLACEHOLDER_RGB,
    SHEET_BACKGROUND,
    SHEET_CELL,
    SHEET_GAP,
    SHEET_MARGIN,
    STATUS_RGB,
    ContactSheet,
    draw_sheets,
    plan_sheets,
)
from runner.review.thumbnails import (
    THUMB_SIZE,
    make_reference_thumbnails,
    make_thumbnails,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from runner.store import JobRow, Store

__all__ = [
    "DATA_FILE",
    "PLACEHOLDER_RGB",
    "SHEET_BACKGROUND",
    "SHEET_CELL",
    "SHEET_GAP",
    "SHEET_MARGIN",
    "STATUS_RGB",
    "THUMB_SIZE",
    "ContactSheet",
    "Review",
    "build_review",
]


@dataclass(frozen=True, slots=True)
class Review:
    """What `build_review` left in the job folder."""

    index: Path
    data: Path  # gallery-data.js
    contact_sheets: tuple[Path, ...]
    thumbnails: int  # items shown with a thumbnail
    thumbnails_made: int  # of those, thumbnails made or remade by this build
    sheets: tuple[ContactSheet, ...]
    index_written: bool  # False when index.html and its data were already identical
    seconds: Mapping[str, float]  # wall time of each stage, for progress and benches


def build_review(store: Store, job: JobRow, job_folder: Path) -> Review:
    """(Re)build `index.html`, `thumbs/` and `contact/` for one job.

    Reads the store and the images; writes only under `job_folder`. Safe to call
    after every run: work already done is skipped.
    """
    clock = time.perf_counter()
    seconds: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = now - clock
        clock = now

    rows = store.manifest_rows(job)
    status = store.status(job)
    entries = build_entries(rows, store.attempt_rows(job))
    grids = build_grids(entries)
    legend = reference_legend(store.reference_sets(job))
    children = store.children_of(job)  # other jobs' items derived from this one's
    lap("store")
    made = make_thumbnails(job_folder, entries)
    make_reference_thumbnails(job_folder, legend)
    lap("thumbnails")
    # The page before the sheets: the gallery is usable while they are drawn.
    pages = plan_sheets(job_folder, grids, legend)
    sheets = tuple(p.sheet for p in pages)
    data_path, index = job_folder / DATA_FILE, job_folder / INDEX
    data = render_data(job.name, grids, entries, sheets, legend, children=children)
    # the data first: a page is never on disk without the data it names
    written = write_page(data_path, data)
    written = (
        write_page(index, render_page(job, status, len(grids), legend, data)) or written
    )
    lap("index")
    draw_sheets(pages)
    lap("contact_sheets")
    return Review(
        index=index,
        data=data_path,
        contact_sheets=tuple(s.path for s in sheets),
        thumbnails=sum(1 for e in entries if e.thumb is not None),
        thumbnails_made=made,
        sheets=sheets,
        index_written=written,
        seconds=seconds,
    )
