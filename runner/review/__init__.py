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
    contact/<prompt>.png    one labelled grid per prompt with at least two cells
                            (X/Y-plot style), with a legend of the reference sets
                            it uses; a grid too big for one page continues in
                            <prompt>_2.png, ...
    contact/+singles-001.png, ...  the prompts with a single cell, a hundred to a
                            shared page, each cell captioned with its prompt

Every file is written whole by rename and only when its content changed (the page
and its data by `outputs.write_atomic`; thumbnails and sheets, made again from the
images if lost, by `outputs.write_whole`, without fsync): a thumbnail newer than its
image is kept, a contact sheet whose embedded signature matches is kept, an
identical index.html or gallery-data.js is not rewritten. Nothing is deleted except
contact sheets this package wrote earlier that the job no longer has (surplus pages,
the sheet of a prompt now on a shared page).

Two ways to build: `build_review` (`runner review`: everything from the store and
the files on disk), and `LiveReview` (`live`, during a run: thumbnails as images
land and sheets as prompts finish, on a low-priority thread; at the run's end the
page is written from the model it kept, with the rows of the items that changed).

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
(the thread pool), `build` (the model and the whole build), `live` (during a run).
Tunables are read from the module that owns them (`sheets.SHEET_MAX_SIDE`,
`workers.WORKERS`, `live.WORKER_NICE`): change them there.
"""

from __future__ import annotations

from runner.review.build import Review, build_review
from runner.review.data import DATA_FILE
from runner.review.sheets import (
    PLACEHOLDER_RGB,
    SHEET_BACKGROUND,
    SHEET_CELL,
    SHEET_GAP,
    SHEET_MARGIN,
    STATUS_RGB,
    ContactSheet,
)
from runner.review.thumbnails import THUMB_SIZE

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
