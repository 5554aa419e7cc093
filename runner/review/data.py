"""The gallery's data: `gallery-data.js`, everything the page shows of each item.

Owns the data file's format. index.html loads it with `<script src>`, which a page
opened from file:// may do (fetching a JSON file it may not), so the file is one
statement, `window.RUNNER_GALLERY = {...};`, whose object is JSON:

    version     DATA_VERSION; the page refuses data it does not know
    job         the job's name
    layout      page_px: the list is split into pages past this height;
                chip_max: an axis with more values gets a search box, not chips
    axes        [{key, title, values, chips, heads, missing, counts}]: status,
                prompt, then aspect_ratio, var:<name>..., image_size, references,
                sample; `chips` and `heads` are how each value reads in the filters
                and in headers (null: as `values`; `missing`: in a header, for an
                item without that axis); the prompt axis's `values` are null when
                they are the prompts' ids in order
    references  {label: [path as written, ...]}: what each reference set sends
    shapes      [{vars, col, rows, columns}]: how a prompt's grid is laid out
                (many prompts share one): `col`/`rows` are indices into `axes`
                (-1: no column axis), `columns` value indices of `col`
    prompts     columns of one value per prompt: `id`, `texts` (its wordings),
                `shape` (into `shapes`), `first`, `cells` (row by row, the item
                index minus `first`; -1: not in the plan), `sheets` (contact-sheet
                pages: its own, or the shared page of a single-cell prompt);
                `dups` {prompt: {row: label}} where two items share a cell
    items       columns of `n` values each, item i at index i: `axis` (a value
                index per axis, -1 where the item has no such axis, null where
                every item has value 0), `key` (12 hex), `text` (into `texts`),
                `attempts`, `tokens` (-1: nothing billed), `reason` (into
                `reasons`), `image` (its first image after `image_dir`, "" if none),
                `thumb` (0 none, 1 `thumbs/<image stem>.jpg`, or the path),
                `simulated` (0/1 or null)
    extra       {item: [paths]}: an item's second and later images
    grounding   {item: {sources: [[title, uri]], suggestions, queries}}; suggestions
                is the whole srcdoc of its sandboxed frame (or null)
    marks       {image path: {mark, note}}: marks on images (those with a mark
                or a note), each image named by its path as in `image` and `extra`
                (the served gallery's ids); the static page shows them and never
                writes, the served page changes them as it writes them
    lineage     null when no item derives from another job's image and no other
                job derives from this one's (SPEC 6); else `jobs` (names of the
                jobs linked to), `modes` (edit, continue, rerender), `parent`
                (null, or columns of one value per item: `job` into `jobs`, -1
                for an item derived from nothing; `mode` into `modes`, null when
                every derived item has modes[0]; `image` the parent image after
                `image_dir`, relative to the parent job's folder, "" for none) and
                `children` {image: [[job, mode, child image or ""], ...]}: the
                items of other jobs derived from each image of this job, in their
                jobs' plan order ("": no image yet). A job's folder is `../<job>/`
                from this one: links work from file:// and on the served page.

Columns of small integers and string tables rather than one object per item: the
file grows with what is particular to each item (its image name and key), not with
repeated keys or markup. Text in it is data, never markup: the page renders it with
textContent. Must not read images or write files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.outputs import IMAGES_DIR
from runner.review.grid import NO_VALUE, axis_title, chip_label, value_label
from runner.review.sheets import CONTACT_DIR
from runner.review.thumbnails import THUMBS_DIR
from runner.store import STATUSES

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from runner.review.grid import Entry, Grid
    from runner.review.grounding import Grounding
    from runner.review.legend import ReferenceSet
    from runner.review.sheets import ContactSheet
    from runner.store import ChildItem

DATA_FILE = "gallery-data.js"
DATA_VERSION = 1
DATA_GLOBAL = "RUNNER_GALLERY"
# Chromium lays out at most 2**25 px (33.5 million: 32-bit layout units of 1/64 px);
# a list taller than half that is paged. 100,000 items in grids of four columns
# are about 6.5 million px; as many prompts of one cell each take three pages.
PAGE_MAX_PX = 16_000_000
CHIP_MAX = 40

# Axes in the order the filters show them; the vars come between these two.
_AXES_BEFORE = ("status", "prompt", "aspect_ratio")
_AXES_AFTER = ("image_size", "references", "sample")


@dataclass(frozen=True, slots=True)
class Mark:
    """A mark on one image, as the served gallery will write it (SPEC 6)."""

    mark: str | None  # "star", "reject" or None
    note: str | None = None


def render_data(
    job_name: str,
    grids: Sequence[Grid],
    entries: Sequence[Entry],
    sheets: Sequence[ContactSheet],
    legend: Sequence[ReferenceSet],
    marks: Mapping[str, Mark] | None = None,
    children: Sequence[ChildItem] = (),
) -> str:
    """The text of `gallery-data.js`; `marks` None: as the entries' manifest rows
    have them (the store's). `children`: items of other jobs derived from this
    one's images."""
    if marks is None:
        marks = entry_marks(entries)
    data = gallery_data(job_name, grids, entries, sheets, legend, marks)
    data["lineage"] = lineage(entries, children)
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"window.{DATA_GLOBAL} = {body};\n"


def gallery_data(
    job_name: str,
    grids: Sequence[Grid],
    entries: Sequence[Entry],
    sheets: Sequence[ContactSheet],
    legend: Sequence[ReferenceSet],
    marks: Mapping[str, Mark],
) -> dict[str, Any]:
    """The object `gallery-data.js` holds (see the module docstring)."""
    index = {id(entry): i for i, entry in enumerate(entries)}
    axes = _axes(entries)
    axis_index = {axis.key: n for n, axis in enumerate(axes)}
    texts = _Table()
    reasons = _Table([""])
    extra: dict[str, list[str]] = {}
    grounding: dict[str, dict[str, Any]] = {}
    images = [e.image or "" for e in entries]
    image_dir = f"{IMAGES_DIR}/"
    if not all(i.startswith(image_dir) for i in images if i):
        image_dir = ""
    items: dict[str, Any] = {
        "n": len(entries),
        "axis": [axis.column(entries) for axis in axes],
        "key": [str(e.row["key"])[:12] for e in entries],
        "text": [texts.add(str(e.row["prompt"])) for e in entries],
        "attempts": [int(e.row.get("attempts") or 0) for e in entries],
        "tokens": [-1 if e.tokens is None else e.tokens for e in entries],
        "reason": [reasons.add(e.reason) for e in entries],
        "image_dir": image_dir,
        "image": [i[len(image_dir) :] for i in images],
        "thumb": [_thumb(e) for e in entries],
        "simulated": None,
    }
    if any(e.row.get("simulated") for e in entries):
        items["simulated"] = [int(bool(e.row.get("simulated"))) for e in entries]
    items["texts"], items["reasons"] = texts.values, reasons.values
    for i, entry in enumerate(entries):
        more = [str(p) for p in list(entry.row.get("outputs") or [])[1:]]
        if more:
            extra[str(i)] = more
        if entry.grounding is not None:
            grounding[str(i)] = _grounding(entry.grounding)
    links: dict[str, list[str]] = {}
    for sheet in sheets:
        for prompt_id in sheet.prompts or (sheet.prompt_id,):  # a shared page: each
            links.setdefault(prompt_id, []).append(f"{CONTACT_DIR}/{sheet.path.name}")
    shapes = _Table()
    prompts: dict[str, Any] = {
        name: [] for name in ("id", "texts", "shape", "first", "cells", "sheets")
    }
    prompts["dups"] = {}
    for n, grid in enumerate(grids):
        col = axis_index[grid.col_axis] if grid.col_axis else -1
        shape = {
            "vars": list(grid.var_names),
            "col": col,
            "rows": [axis_index[a] for a in grid.row_axes],
            "columns": [axes[col].index[v] for v in grid.columns] if col >= 0 else [0],
        }
        first = min(index[id(e)] for e in grid.entries)
        prompts["id"].append(grid.prompt_id)
        prompts["texts"].append(list(grid.texts))
        prompts["shape"].append(shapes.add(json.dumps(shape)))
        prompts["first"].append(first)
        prompts["cells"].append(_cells(grid, index, first))
        prompts["sheets"].append(links.get(grid.prompt_id, []))
        dups = {
            str(r): " · ".join(grid.row_lines(r)[len(grid.row_axes) :])
            for r, key in enumerate(grid.rows)
            if len(key) > len(grid.row_axes)
        }
        if dups:
            prompts["dups"][str(n)] = dups
    axes_out = [axis.as_dict() for axis in axes]
    if axes[1].values == prompts["id"]:  # as at 100,000 prompts of one item
        axes_out[1]["values"] = None
    return {
        "version": DATA_VERSION,
        "job": job_name,
        "layout": {"page_px": PAGE_MAX_PX, "chip_max": CHIP_MAX},
        "axes": axes_out,
        "references": {s.label: [f.path for f in s.files] for s in legend},
        "shapes": [json.loads(shape) for shape in shapes.values],
        "prompts": prompts,
        "items": items,
        "extra": extra,
        "grounding": grounding,
        "marks": {path: {"mark": m.mark, "note": m.note} for path, m in marks.items()},
        "lineage": None,
    }


def lineage(
    entries: Sequence[Entry], children: Sequence[ChildItem]
) -> dict[str, Any] | None:
    """The data's `lineage` (see the module docstring): nothing per item unless
    some item has a parent."""
    parents = [e.row.get("parent") for e in entries]
    if not children and not any(parents):
        return None
    jobs, modes = _Table(), _Table()
    parent: dict[str, Any] | None = None
    if any(parents):
        images = [str(p["image"]) if p else "" for p in parents]
        image_dir = f"{IMAGES_DIR}/"
        if not all(i.startswith(image_dir) for i in images if i):
            image_dir = ""
        mode = [modes.add(str(p["mode"])) if p else 0 for p in parents]
        parent = {
            "job": [jobs.add(str(p["job"])) if p else -1 for p in parents],
            "mode": mode if any(mode) else None,
            "image_dir": image_dir,
            "image": [i[len(image_dir) :] for i in images],
        }
    kids: dict[str, list[list[int | str]]] = {}
    for child in children:
        kids.setdefault(child.parent_image, []).append(
            [jobs.add(child.job), modes.add(child.mode), child.image or ""]
        )
    return {
        "jobs": jobs.values,
        "modes": modes.values,
        "parent": parent,
        "children": kids,
    }


def entry_marks(entries: Sequence[Entry]) -> dict[str, Mark]:
    """image -> its mark, for the images of these entries that have a mark or a
    note (SPEC 6: marks belong to images)."""
    return {
        image: Mark(m.get("mark"), m.get("note"))
        for entry in entries
        for image, m in entry.marks.items()
        if m.get("mark") or m.get("note")
    }


def thumb_path(image: str) -> str:
    """Where the page looks for an image's thumbnail when `thumb` is 1: the rule
    gallery.js applies (`thumbs/` + the file name up to its last dot + `.jpg`)."""
    name = image.rpartition("/")[2]
    dot = name.rfind(".")
    return f"{THUMBS_DIR}/{name[:dot] if dot > 0 else name}.jpg"


# -- parts -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Axis:
    key: str
    values: list[str]
    counts: list[int]
    index: dict[str, int]

    def column(self, entries: Sequence[Entry]) -> list[int] | None:
        """Each item's value index; None when every item has the first value."""
        get, index = _getter(self.key), self.index
        column = [
            index.get(v, -1) if (v := get(e)) is not None else -1 for e in entries
        ]
        return column if any(column) else None

    def as_dict(self) -> dict[str, Any]:
        chips = [chip_label(self.key, v) for v in self.values]
        heads = [value_label(self.key, v) for v in self.values]
        return {
            "key": self.key,
            "title": axis_title(self.key),
            "values": self.values,
            "chips": None if chips == self.values else chips,
            "heads": None if heads == self.values else heads,
            "missing": value_label(self.key, NO_VALUE),  # the head of value -1
            "counts": self.counts,
        }


def _axes(entries: Sequence[Entry]) -> list[_Axis]:
    counts: dict[str, dict[str, int]] = {key: {} for key in _AXES_BEFORE}
    for entry in entries:
        for key, value in _values(entry):
            bucket = counts.setdefault(key, {})
            bucket[value] = bucket.get(value, 0) + 1
    order = {s: i for i, s in enumerate(STATUSES)}
    counts["status"] = dict(
        sorted(counts["status"].items(), key=lambda kv: order.get(kv[0], 99))
    )
    keys = [k for k in counts if k not in _AXES_AFTER]
    keys += [k for k in _AXES_AFTER if k in counts]
    found = []
    for key in keys:
        values = list(counts[key])
        found.append(
            _Axis(
                key,
                values,
                [counts[key][v] for v in values],
                {v: i for i, v in enumerate(values)},
            )
        )
    return found


def _values(entry: Entry) -> list[tuple[str, str]]:
    return [
        ("status", entry.status),
        ("prompt", str(entry.row["prompt_id"])),
        *entry.axes.items(),
    ]


def _getter(key: str) -> Any:
    if key == "status":
        return lambda e: e.status
    if key == "prompt":
        return lambda e: str(e.row["prompt_id"])
    return lambda e: e.axes.get(key)


def _thumb(entry: Entry) -> int | str:
    if entry.thumb is None or entry.image is None:
        return 0
    return 1 if entry.thumb == thumb_path(entry.image) else entry.thumb


def _cells(grid: Grid, index: Mapping[int, int], first: int) -> list[int]:
    return [
        index[id(cell)] - first if (cell := grid.cells.get((r, c))) is not None else -1
        for r in range(len(grid.rows))
        for c in range(len(grid.columns))
    ]


def _grounding(grounding: Grounding) -> dict[str, Any]:
    return {
        "sources": [[s.title, s.uri] for s in grounding.sources],
        "suggestions": (
            None
            if grounding.suggestions is None
            else suggestions_doc(grounding.suggestions)
        ),
        "queries": list(grounding.queries),
    }


# Google's search suggestions come as a snippet of HTML and CSS to show as given:
# markup from the network that must not reach into the gallery. gallery.js shows
# this document in an iframe sandboxed without scripts or same-origin (see
# `suggestionsFrame` there); the document's own Content-Security-Policy lets it
# load nothing (only inline styles and data: images), so opening the gallery
# fetches nothing, and `base target` opens a clicked suggestion in a new tab, since
# Google's pages refuse to be shown inside a frame.
_SUGGESTIONS_HEAD = (
    "<!doctype html><html><head><meta charset=utf-8>"
    '<meta http-equiv="Content-Security-Policy" content="default-src \'none\';'
    " style-src 'unsafe-inline'; img-src data:\">"
    "<base target=_blank><style>body{margin:0}</style></head><body>"
)
_SUGGESTIONS_TAIL = "</body></html>"


def suggestions_doc(rendered: str) -> str:
    """The document a grounded image's search suggestions are shown in."""
    return _SUGGESTIONS_HEAD + rendered + _SUGGESTIONS_TAIL


class _Table:
    """Distinct strings, each stored once; items hold their index."""

    def __init__(self, first: Sequence[str] = ()) -> None:
        self.values: list[str] = list(first)
        self._index = {v: i for i, v in enumerate(self.values)}

    def add(self, value: str) -> int:
        found = self._index.get(value)
        if found is None:
            found = self._index[value] = len(self.values)
            self.values.append(value)
        return found
