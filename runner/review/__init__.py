"""Results review: the job folder's gallery page, thumbnails and contact sheets.

Owns: turning what the store knows about a job (manifest rows, status totals, attempt
usage) and the image files on disk into, under the job folder only,

    index.html              one self-contained page (inline CSS and JS, no network,
                            works from file://): rows = prompts, columns = the axes
                            that vary, filters, per-prompt comparison, job totals
    thumbs/<image>.jpg      one JPEG per item's first image, THUMB_SIZE px at most
    contact/<prompt>.png    one labelled grid per prompt (X/Y-plot style); a grid
                            too big for one page continues in <prompt>_2.png, ...

Every file is written atomically (`outputs.write_atomic`) and only when its content
changed: a thumbnail newer than its image is kept, a contact sheet whose embedded
signature matches is kept, an identical index.html is not rewritten. Nothing is
deleted except surplus pages of a contact sheet this module wrote earlier.

Must not write to the store, use the network, or touch files outside the job folder.

Memory stays bounded however large the job: a worker (at most WORKERS threads,
or this one for small amounts of work) holds one decoded image or one sheet page at
a time; JPEGs decode at reduced scale (`draft`); contact sheets are composed from the
thumbnails, never from full images; and a sheet page is at most SHEET_MAX_SIDE px on
a side and SHEET_MAX_PIXELS in all (32 Mpx, 96 MiB as RGB). A prompt whose grid would
be larger first gets smaller cells (down to SHEET_MIN_CELL) and is then split into
pages of whole rows (and of whole columns if even one row is too wide).

Fonts: Pillow's bundled FreeType font (Aileron), so no system font is needed; it
covers Latin scripts, and text in other scripts draws as boxes on the sheets (the
page shows it as the browser would).
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from runner import outputs
from runner.store import STATUSES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from pathlib import Path

    from runner.store import JobRow, Status, Store

INDEX = "index.html"
THUMBS_DIR = "thumbs"
CONTACT_DIR = "contact"

# px, longest side: sharp in the page's 216 px frames on a 2x screen, and exactly
# twice SHEET_CELL, so a sheet cell is the thumbnail decoded at half scale (no resize)
THUMB_SIZE = 512
THUMB_QUALITY = 82
# Threads making thumbnails and drawing sheet pages; each holds one decoded image
# or one sheet page in memory at a time.
WORKERS = max(1, min(4, os.cpu_count() or 1))

SHEET_CELL = 256  # px, the largest cell side of a contact sheet
SHEET_MIN_CELL = 96
SHEET_GAP = 8
SHEET_MARGIN = 24
SHEET_MAX_SIDE = 8192
SHEET_MAX_PIXELS = 32 * 1024 * 1024
SHEET_LABEL_PX = 20
SHEET_TITLE_PX = 28
SHEET_SMALL_PX = 15
SHEET_ROW_LABEL_MAX = 360  # px; longer row labels are shortened with an ellipsis
# zlib level 1: half the time of the default 6 for files about 15% larger (most of
# what is left is Pillow's per-row PNG filtering, which holds the GIL).
SHEET_COMPRESS_LEVEL = 1

SHEET_BACKGROUND = (255, 255, 255)
SHEET_INK = (28, 28, 30)
SHEET_MUTED = (100, 100, 108)
SHEET_LETTERBOX = (240, 240, 243)
PLACEHOLDER_RGB = (226, 226, 231)
STATUS_RGB: Mapping[str, tuple[int, int, int]] = {
    "succeeded": (31, 138, 76),
    "failed": (198, 40, 40),
    "blocked": (178, 100, 0),
    "pending": (100, 100, 108),
    "running": (37, 99, 235),
    "missing": (120, 120, 128),
}

_SIGNATURE_KEY = "runner-review"
_PROMPT_KEY = "runner-review-prompt"
_LAYOUT_VERSION = "1"  # bump when the drawing changes, so old sheets are redrawn
_NO_VALUE = "—"
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class ContactSheet:
    """One page of a prompt's contact sheet, with the geometry it was drawn with.

    Cell (row r, column c) spans `cell` px square from
    x = left + c * (cell + SHEET_GAP), y = top + r * (cell + SHEET_GAP); the image is
    `size` = (left + columns * pitch - SHEET_GAP + SHEET_MARGIN, likewise down).
    """

    path: Path
    prompt_id: str
    page: int  # 1-based
    pages: int
    columns: tuple[str, ...]  # column header labels, left to right
    rows: tuple[str, ...]  # row header labels (one line per axis, " / "), top down
    cell: int
    left: int
    top: int
    size: tuple[int, int]
    written: bool  # False when the file on disk was already up to date


@dataclass(frozen=True, slots=True)
class Review:
    """What `build_review` left in the job folder."""

    index: Path
    contact_sheets: tuple[Path, ...]
    thumbnails: int  # items shown with a thumbnail
    thumbnails_made: int  # of those, thumbnails made or remade by this build
    sheets: tuple[ContactSheet, ...]
    index_written: bool  # False when index.html was already identical
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
    tokens = _tokens_by_key(store.attempt_rows(job))
    entries = [_entry(row, tokens.get(row["key"])) for row in rows]
    grids = [_grid(pid, group) for pid, group in _by_prompt(entries).items()]
    lap("store")
    made = _make_thumbnails(job_folder, entries)
    lap("thumbnails")
    # The page before the sheets: the gallery is usable while they are drawn.
    pages = _plan_sheets(job_folder, grids)
    html_text = _render_page(job, status, grids, entries, pages)
    index = job_folder / INDEX
    written = _write_if_changed(index, html_text.encode("utf-8"))
    lap("index")
    _parallel(_draw_page, [p for p in pages if p.sheet.written])
    lap("contact_sheets")
    return Review(
        index=index,
        contact_sheets=tuple(p.sheet.path for p in pages),
        thumbnails=sum(1 for e in entries if e.thumb is not None),
        thumbnails_made=made,
        sheets=tuple(p.sheet for p in pages),
        index_written=written,
        seconds=seconds,
    )


def _parallel(task: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    """`task` over `items` on WORKERS threads, results in order. Pillow releases
    the GIL while it decodes and resizes, so those scale; its PNG encoder does not.
    Processes would scale that too, but a spawned child re-runs an unguarded
    `__main__` (a user's script), and forking a threaded process can deadlock."""
    if WORKERS < 2 or len(items) < 2:
        return [task(item) for item in items]
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="review") as pool:
        return list(pool.map(task, items))


# -- items and grids -------------------------------------------------------------------


@dataclass(slots=True)
class _Entry:
    """One item as the review shows it."""

    row: Mapping[str, Any]
    axes: dict[str, str]  # axis key -> value, see _item_axes
    tokens: int | None  # totalTokenCount over every attempt (blocked ones are billed)
    image: str | None = None  # first output, relative to the job folder
    thumb: str | None = None  # relative to the job folder, once made
    thumb_size: tuple[int, int] | None = None
    thumb_mtime: int = 0
    note: str | None = None  # why an item that has outputs shows no picture

    @property
    def status(self) -> str:
        return str(self.row["status"])

    @property
    def reason(self) -> str:
        """Finish reason and error, as one line ('' when there is nothing to say)."""
        finish, error = self.row.get("finish_reason"), self.row.get("error")
        if self.note:
            return self.note
        if self.status == "succeeded":
            return ""
        parts = [str(error)] if error else []
        if finish and finish != "STOP" and not (error and str(finish) in str(error)):
            parts.insert(0, str(finish))
        if parts:
            # a middle dot, not a dash: Pillow's bundled font has no U+2014
            return " · ".join(parts)
        return {"pending": "not sent yet", "running": "in flight"}.get(
            self.status, "no reason recorded"
        )


@dataclass(frozen=True, slots=True)
class _Grid:
    """A prompt's items laid out: one column per value of `col_axis`, one row per
    combination of the other axes that vary within the prompt."""

    prompt_id: str
    texts: tuple[str, ...]  # distinct prompt templates (see _template), plan order
    var_names: tuple[str, ...]
    col_axis: str | None
    row_axes: tuple[str, ...]
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    cells: Mapping[tuple[int, int], _Entry]
    entries: tuple[_Entry, ...]

    def column_label(self, c: int) -> str:
        if self.col_axis is None:
            return ""
        return _value_label(self.col_axis, self.columns[c])

    def row_lines(self, r: int) -> list[str]:
        values = self.rows[r]
        lines = [
            _value_label(a, v) for a, v in zip(self.row_axes, values, strict=False)
        ]
        # values beyond the axes only appear when two items share a cell
        return lines + [f"duplicate {v}" for v in values[len(self.row_axes) :]]

    def entry_label(self, entry: _Entry) -> str:
        axes = ([self.col_axis] if self.col_axis else []) + list(self.row_axes)
        return " · ".join(_value_label(a, entry.axes.get(a, _NO_VALUE)) for a in axes)


def _item_axes(row: Mapping[str, Any]) -> dict[str, str]:
    """Every axis value of an item, in display order: aspect ratio, vars, size,
    reference set, sample. Var names are prefixed so a var called `sample` is safe."""
    axes = {"aspect_ratio": str(row["aspect_ratio"])}
    for name, value in (row.get("vars") or {}).items():
        axes[f"var:{name}"] = str(value)
    axes["image_size"] = str(row.get("image_size") or "default")
    axes["references"] = str(row.get("ref_set") or "noref")
    axes["sample"] = str(row["sample"])
    return axes


def _axis_title(axis: str) -> str:
    titles = {
        "prompt": "Prompt",
        "status": "Status",
        "aspect_ratio": "Aspect ratio",
        "image_size": "Size",
        "references": "References",
        "sample": "Sample",
    }
    return titles.get(axis, axis.removeprefix("var:"))


def _value_label(axis: str, value: str) -> str:
    """How a value reads in a header, where the axis name is not shown."""
    if axis == "image_size":
        return "default size" if value == "default" else value
    if axis == "references":
        return "no refs" if value == "noref" else f"refs {value}"
    if axis == "sample":
        return f"sample {value}"
    if axis.startswith("var:"):
        return f"{axis[4:]}: {value}"
    return value


def _chip_label(axis: str, value: str) -> str:
    """How a value reads under its axis title (filters)."""
    if axis == "references":
        return "none" if value == "noref" else value
    return value


def _entry(row: Mapping[str, Any], tokens: int | None) -> _Entry:
    entry = _Entry(row=row, axes=_item_axes(row), tokens=tokens)
    found = list(row.get("outputs") or [])
    if found:
        entry.image = str(found[0])
    return entry


def _tokens_by_key(attempt_rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for attempt in attempt_rows:
        usage_json = attempt.get("usage_json")
        if not usage_json:
            continue  # no answer with usage: nothing known to be billed
        total = attempt.get("total_tokens")  # the store's copy, when it has one
        if total is None:
            total = json.loads(usage_json).get("totalTokenCount")
        key = str(attempt["key"])
        totals[key] = totals.get(key, 0) + int(total or 0)
    return totals


def _by_prompt(entries: Iterable[_Entry]) -> dict[str, list[_Entry]]:
    groups: dict[str, list[_Entry]] = {}
    for entry in entries:
        groups.setdefault(str(entry.row["prompt_id"]), []).append(entry)
    return groups


def _distinct(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _template(row: Mapping[str, Any]) -> str:
    """The rendered prompt with each var value put back as `{name}`.

    The store keeps rendered text only; this recovers the job file's template for
    headers (exact unless a value also occurs elsewhere in the text)."""
    text = str(row["prompt"])
    values = sorted((row.get("vars") or {}).items(), key=lambda kv: -len(str(kv[1])))
    for name, value in values:
        if str(value):
            text = text.replace(str(value), "{" + str(name) + "}")
    return text


def _grid(prompt_id: str, entries: Sequence[_Entry]) -> _Grid:
    values: dict[str, list[str]] = {}
    for entry in entries:
        for axis, value in entry.axes.items():
            values.setdefault(axis, [])
            if value not in values[axis]:
                values[axis].append(value)
    varying = [a for a, vs in values.items() if len(vs) > 1]
    # Aspect ratio across, as in the gallery; failing that samples (repeats compare
    # best side by side), failing that the first axis that varies.
    col_axis: str | None = None
    for preferred in ("aspect_ratio", "sample"):
        if preferred in varying:
            col_axis = preferred
            break
    else:
        col_axis = varying[0] if varying else None
    row_axes = tuple(a for a in varying if a != col_axis)
    columns = tuple(values[col_axis]) if col_axis else ("",)

    rows: list[tuple[str, ...]] = []
    row_index: dict[tuple[str, ...], int] = {}
    cells: dict[tuple[int, int], _Entry] = {}
    for entry in entries:
        c = columns.index(entry.axes[col_axis]) if col_axis else 0
        key = tuple(entry.axes.get(a, _NO_VALUE) for a in row_axes)
        n = 1
        while key in row_index and (row_index[key], c) in cells:
            n += 1
            key = (*key[: len(row_axes)], str(n))
        if key not in row_index:
            row_index[key] = len(rows)
            rows.append(key)
        cells[(row_index[key], c)] = entry
    return _Grid(
        prompt_id=prompt_id,
        texts=tuple(_distinct(_template(e.row) for e in entries)),
        var_names=tuple(_distinct(n for e in entries for n in e.row.get("vars") or {})),
        col_axis=col_axis,
        row_axes=row_axes,
        columns=columns,
        rows=tuple(rows),
        cells=cells,
        entries=tuple(entries),
    )


# -- thumbnails ------------------------------------------------------------------------


def _make_thumbnails(job_folder: Path, entries: Sequence[_Entry]) -> int:
    """Give every entry with an image its thumbnail; returns how many were (re)made."""
    root = job_folder.resolve()
    todo: list[tuple[_Entry, str, Path, Path]] = []
    for entry in entries:
        if entry.image is None:
            continue
        src = (job_folder / entry.image).resolve()
        if not src.is_relative_to(root):
            entry.note = "image path is outside the job folder"
            continue
        rel = f"{THUMBS_DIR}/{src.stem}.jpg"
        try:
            cached = _cached_thumbnail(src, job_folder / rel)
        except FileNotFoundError:
            entry.note = "image file missing"
            continue
        if cached is None:
            todo.append((entry, rel, src, job_folder / rel))
        else:
            entry.thumb, (entry.thumb_size, entry.thumb_mtime) = rel, cached
    made = _parallel(_thumbnail_task, [(src, dst) for _, _, src, dst in todo])
    for (entry, rel, _, _), result in zip(todo, made, strict=True):
        if isinstance(result, str):
            entry.note = result
        else:
            entry.thumb, (entry.thumb_size, entry.thumb_mtime) = rel, result
    return sum(1 for result in made if not isinstance(result, str))


def _cached_thumbnail(src: Path, dst: Path) -> tuple[tuple[int, int], int] | None:
    """(size, mtime_ns) of `dst` if it is newer than `src`; None if it must be made."""
    src_mtime = src.stat().st_mtime_ns
    try:
        done = dst.stat().st_mtime_ns
        if done >= src_mtime:
            with Image.open(dst) as existing:  # reads the header only
                return existing.size, done
    except OSError:
        pass  # missing or unreadable: make it again
    return None


def _thumbnail_task(paths: tuple[Path, Path]) -> tuple[tuple[int, int], int] | str:
    """Worker: make one thumbnail; (size, mtime_ns), or why the image has none."""
    src, dst = paths
    try:
        return _thumbnail(src, dst)
    except FileNotFoundError:
        return "image file missing"
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        return f"image unreadable ({type(exc).__name__})"


def _thumbnail(src: Path, dst: Path) -> tuple[tuple[int, int], int]:
    """Write `dst`, a JPEG of `src` at most THUMB_SIZE px; returns (size, mtime_ns)."""
    with Image.open(src) as image:
        image.draft("RGB", (THUMB_SIZE, THUMB_SIZE))  # JPEG: decode at 1/2..1/8
        small = _flatten(image)
        # reducing_gap=1: box-reduce by the whole factor first, then Lanczos the
        # rest; a third of the time of plain Lanczos, no visible difference here
        small.thumbnail(
            (THUMB_SIZE, THUMB_SIZE), Image.Resampling.LANCZOS, reducing_gap=1.0
        )
        small.load()  # before the file closes: an RGB `small` is `image` itself
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=THUMB_QUALITY, optimize=True)
    outputs.write_atomic(dst, buffer.getvalue())
    return small.size, dst.stat().st_mtime_ns


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited onto white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


# -- contact sheets --------------------------------------------------------------------


_fonts = threading.local()


def _font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled FreeType font (Pillow >= 10.1): no system font needed. One
    per thread: a FreeType face must not be used by two threads at once."""
    cache: dict[int, ImageFont.FreeTypeFont] = _fonts.__dict__.setdefault("by_size", {})
    if size not in cache:
        font = ImageFont.load_default(size=size)
        assert isinstance(font, ImageFont.FreeTypeFont)
        cache[size] = font
    return cache[size]


def _line_height(font: ImageFont.FreeTypeFont) -> int:
    ascent, descent = font.getmetrics()
    return ascent + descent + 4


def _fit(text: str, font: ImageFont.FreeTypeFont, width: int) -> str:
    """`text`, shortened with an ellipsis to fit `width` px."""
    if font.getlength(text) <= width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if font.getlength(text[:mid] + "…") <= width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + "…"


def _wrap(
    text: str, font: ImageFont.FreeTypeFont, width: int, max_lines: int
) -> list[str]:
    lines: list[str] = []
    current = ""
    words = text.split()
    for i, word in enumerate(words):
        trial = f"{current} {word}" if current else word
        if font.getlength(trial) <= width:
            current = trial
            continue
        if current:
            lines.append(current)
        current = word
        if len(lines) == max_lines:
            current = " ".join(words[i:])
            break
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1] + " " + "…"
    return [_fit(line, font, width) for line in lines]


def _safe_name(prompt_id: str) -> str:
    """A file name stem from a prompt id (ids are already [A-Za-z0-9._-])."""
    cleaned = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in prompt_id)
    return cleaned.lstrip(".") or "prompt"


def _page_names(stem: str, pages: int, taken: set[str]) -> list[str]:
    """`stem.png`, then `stem_2.png`...; `+` (never in a prompt id) if that clashes
    with another prompt's sheet."""
    names = [f"{stem}.png"]
    for n in range(2, pages + 1):
        name = f"{stem}_{n}.png"
        if name in taken:
            name = f"{stem}+{n}.png"
        names.append(name)
    return names


@dataclass(frozen=True, slots=True)
class _SheetLayout:
    cell: int
    row_label_w: int
    left: int
    top: int
    cols_per_page: int
    rows_per_page: int
    title_lines: int


def _sheet_layout(grid: _Grid) -> _SheetLayout:
    label = _font(SHEET_LABEL_PX)
    line = _line_height(label)
    widest = max(
        (label.getlength(t) for r in range(len(grid.rows)) for t in grid.row_lines(r)),
        default=0.0,
    )
    row_label_w = min(SHEET_ROW_LABEL_MAX, int(widest) + 12) if grid.row_axes else 0
    left = SHEET_MARGIN + (row_label_w + SHEET_GAP if row_label_w else 0)
    n_cols = len(grid.columns)
    room = SHEET_MAX_SIDE - left - SHEET_MARGIN + SHEET_GAP
    cell = min(SHEET_CELL, room // n_cols - SHEET_GAP)
    cols_per_page = n_cols
    if cell < SHEET_MIN_CELL:
        cell = SHEET_MIN_CELL
        cols_per_page = max(1, room // (cell + SHEET_GAP))
    title_lines = 2
    top = SHEET_MARGIN + _line_height(_font(SHEET_TITLE_PX))
    top += title_lines * _line_height(_font(SHEET_SMALL_PX)) + SHEET_GAP
    if grid.col_axis is not None:
        top += line + SHEET_GAP
    pitch = cell + SHEET_GAP
    width = left + cols_per_page * pitch - SHEET_GAP + SHEET_MARGIN
    max_h = min(SHEET_MAX_SIDE, SHEET_MAX_PIXELS // width)
    rows_per_page = max(1, (max_h - top - SHEET_MARGIN + SHEET_GAP) // pitch)
    return _SheetLayout(
        cell, row_label_w, left, top, cols_per_page, rows_per_page, title_lines
    )


@dataclass(frozen=True, slots=True)
class _Page:
    """One contact-sheet page: what it shows, and all a worker needs to draw it."""

    sheet: ContactSheet
    grid: _Grid
    layout: _SheetLayout
    rows: range
    cols: range
    signature: str  # of everything drawn; embedded in the PNG


def _plan_sheets(job_folder: Path, grids: Sequence[_Grid]) -> list[_Page]:
    """Every prompt's sheet pages, each `written` if its content changed (and so
    must be drawn); removes surplus pages an earlier, larger grid needed."""
    folder = job_folder / CONTACT_DIR
    taken = {_safe_name(g.prompt_id) + ".png" for g in grids}
    found: list[_Page] = []
    for grid in grids:
        layout = _sheet_layout(grid)
        row_chunks = _chunks(len(grid.rows), layout.rows_per_page)
        col_chunks = _chunks(len(grid.columns), layout.cols_per_page)
        pages = [(rs, cs) for rs in row_chunks for cs in col_chunks]
        names = _page_names(_safe_name(grid.prompt_id), len(pages), taken)
        taken.update(names)
        for n, (name, (rs, cs)) in enumerate(zip(names, pages, strict=True)):
            page = _describe_page(
                folder / name, grid, layout, rs, cs, n + 1, len(pages)
            )
            found.append(page)
        _remove_surplus_pages(folder, grid.prompt_id, set(names))
    return found


def _chunks(n: int, size: int) -> list[range]:
    return [range(start, min(n, start + size)) for start in range(0, n, size)]


def _describe_page(
    path: Path,
    grid: _Grid,
    layout: _SheetLayout,
    rows: range,
    cols: range,
    number: int,
    pages: int,
) -> _Page:
    """A page's geometry, labels and the signature of what it shows; its sheet is
    `written` (must be drawn) unless the file on disk carries that signature."""
    pitch = layout.cell + SHEET_GAP
    size = (
        layout.left + len(cols) * pitch - SHEET_GAP + SHEET_MARGIN,
        layout.top + len(rows) * pitch - SHEET_GAP + SHEET_MARGIN,
    )
    column_labels = tuple(grid.column_label(c) for c in cols)
    row_labels = tuple(" / ".join(grid.row_lines(r)) for r in rows)
    cells = []
    for r in rows:
        for c in cols:
            entry = grid.cells.get((r, c))
            cells.append(
                None
                if entry is None
                else [entry.status, entry.reason, entry.thumb, entry.thumb_mtime]
            )
    signature = hashlib.sha256(
        json.dumps(
            [
                _LAYOUT_VERSION,
                [SHEET_CELL, SHEET_GAP, SHEET_MARGIN, SHEET_LABEL_PX, SHEET_TITLE_PX],
                grid.prompt_id,
                list(grid.texts),
                number,
                pages,
                column_labels,
                row_labels,
                layout.cell,
                cells,
            ],
            ensure_ascii=False,
        ).encode("utf-8")
    ).hexdigest()
    sheet = ContactSheet(
        path=path,
        prompt_id=grid.prompt_id,
        page=number,
        pages=pages,
        columns=column_labels,
        rows=row_labels,
        cell=layout.cell,
        left=layout.left,
        top=layout.top,
        size=size,
        written=_sheet_signature(path) != signature,
    )
    return _Page(sheet, grid, layout, rows, cols, signature)


def _draw_page(page: _Page) -> None:
    """Worker: draw one page and write it, its signature embedded."""
    sheet, grid, layout = page.sheet, page.grid, page.layout
    pitch = layout.cell + SHEET_GAP
    canvas = Image.new("RGB", sheet.size, SHEET_BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    _draw_title(draw, grid, layout, sheet.size[0], sheet.page, sheet.pages)
    label = _font(SHEET_LABEL_PX)
    line = _line_height(label)
    if grid.col_axis is not None:
        y = layout.top - SHEET_GAP - line
        for i, text in enumerate(sheet.columns):
            x = layout.left + i * pitch
            shown = _fit(text, label, layout.cell - 4)
            dx = (layout.cell - label.getlength(shown)) / 2
            draw.text((x + dx, y), shown, font=label, fill=SHEET_INK)
    for i, r in enumerate(page.rows):
        y = layout.top + i * pitch
        lines = grid.row_lines(r)
        fits = max(1, layout.cell // line)
        lines = lines[:fits]
        y0 = y + (layout.cell - len(lines) * line) / 2
        for j, text in enumerate(lines):
            shown = _fit(text, label, layout.row_label_w - 8)
            draw.text((SHEET_MARGIN, y0 + j * line), shown, font=label, fill=SHEET_INK)
        for k, c in enumerate(page.cols):
            box = (layout.left + k * pitch, y, layout.cell)
            entry = grid.cells.get((r, c))
            _draw_cell(canvas, draw, sheet.path.parent.parent, entry, box)

    info = PngImagePlugin.PngInfo()
    info.add_text(_SIGNATURE_KEY, page.signature)
    info.add_text(_PROMPT_KEY, grid.prompt_id)
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG", pnginfo=info, compress_level=SHEET_COMPRESS_LEVEL)
    canvas.close()
    outputs.write_atomic(sheet.path, buffer.getvalue())


def _draw_title(
    draw: ImageDraw.ImageDraw,
    grid: _Grid,
    layout: _SheetLayout,
    width: int,
    page: int,
    pages: int,
) -> None:
    title, small = _font(SHEET_TITLE_PX), _font(SHEET_SMALL_PX)
    room = width - 2 * SHEET_MARGIN
    heading = grid.prompt_id + (f"   page {page} of {pages}" if pages > 1 else "")
    draw.text(
        (SHEET_MARGIN, SHEET_MARGIN),
        _fit(heading, title, room),
        font=title,
        fill=SHEET_INK,
    )
    text = grid.texts[0] if grid.texts else ""
    if len(grid.texts) > 1:
        text += f"   (+{len(grid.texts) - 1} more wordings)"
    y = SHEET_MARGIN + _line_height(title)
    for i, part in enumerate(_wrap(text, small, room, layout.title_lines)):
        draw.text(
            (SHEET_MARGIN, y + i * _line_height(small)),
            part,
            font=small,
            fill=SHEET_MUTED,
        )
    if grid.row_axes and grid.col_axis is not None:
        # the corner names the row axes, above the row labels
        corner = " / ".join(_axis_title(a) for a in grid.row_axes)
        label = _font(SHEET_LABEL_PX)
        y = layout.top - SHEET_GAP - _line_height(label)
        shown = _fit(corner, small, layout.row_label_w - 8)
        draw.text((SHEET_MARGIN, y + 3), shown, font=small, fill=SHEET_MUTED)


def _draw_cell(
    canvas: Image.Image,
    draw: ImageDraw.ImageDraw,
    job_folder: Path,
    entry: _Entry | None,
    box: tuple[int, int, int],
) -> None:
    x, y, cell = box
    if entry is not None and entry.thumb is not None:
        try:
            with Image.open(job_folder / entry.thumb) as thumb:
                # JPEG DCT scaling: a thumbnail twice the cell decodes at cell size
                thumb.draft("RGB", _fit_size(thumb.size, cell))
                image = thumb.convert("RGB")
            image.thumbnail((cell, cell), Image.Resampling.LANCZOS)
        except (OSError, ValueError):
            image = None
        if image is not None:
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=SHEET_LETTERBOX)
            dx, dy = (cell - image.width) // 2, (cell - image.height) // 2
            canvas.paste(image, (x + dx, y + dy))
            return
    status = "missing" if entry is None else entry.status
    word = "not in plan" if entry is None else status
    reason = "" if entry is None else entry.reason
    if entry is not None and entry.status == "succeeded":
        word = "no image"
    colour = STATUS_RGB.get(status, STATUS_RGB["missing"])
    draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=PLACEHOLDER_RGB)
    draw.rectangle((x, y, x + cell - 1, y + 5), fill=colour)
    label, small = _font(SHEET_LABEL_PX), _font(SHEET_SMALL_PX)
    pad = 10
    draw.text(
        (x + pad, y + 14), _fit(word, label, cell - 2 * pad), font=label, fill=colour
    )
    room = (cell - 14 - _line_height(label) - pad) // _line_height(small)
    if reason and room > 0:
        top = y + 14 + _line_height(label) + 2
        for i, part in enumerate(_wrap(reason, small, cell - 2 * pad, room)):
            draw.text(
                (x + pad, top + i * _line_height(small)),
                part,
                font=small,
                fill=SHEET_INK,
            )


def _fit_size(size: tuple[int, int], box: int) -> tuple[int, int]:
    """`size` scaled to fit a `box` px square, keeping its aspect ratio."""
    scale = min(1.0, box / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _sheet_signature(path: Path) -> str | None:
    try:
        with Image.open(path) as existing:  # tEXt chunks precede the pixels
            value = existing.info.get(_SIGNATURE_KEY)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, str) else None


def _remove_surplus_pages(folder: Path, prompt_id: str, keep: set[str]) -> None:
    """Pages of this prompt's sheet that an earlier, larger grid needed."""
    stem = _safe_name(prompt_id)
    for pattern in (f"{stem}_*.png", f"{stem}+*.png"):
        for path in folder.glob(pattern):
            if path.name in keep:
                continue
            try:
                with Image.open(path) as existing:
                    ours = existing.info.get(_PROMPT_KEY) == prompt_id
            except (OSError, ValueError):
                continue
            suffix = path.name[len(stem) + 1 : -len(".png")]
            if ours and suffix.isdigit():
                path.unlink(missing_ok=True)


# -- the page --------------------------------------------------------------------------


def _write_if_changed(path: Path, data: bytes) -> bool:
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    outputs.write_atomic(path, data)
    return True


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _marked(template: str, names: Sequence[str]) -> str:
    """Escaped template text with its `{name}` placeholders wrapped for styling."""
    out = _e(template)
    for name in names:
        token = _e("{" + name + "}")
        out = out.replace(token, f"<span class=var>{token}</span>")
    return out


def _href(rel: str) -> str:
    return _e(quote(rel))


def _filters(entries: Sequence[_Entry]) -> list[tuple[str, list[tuple[str, int]]]]:
    """(axis, [(value, count)]) for status and every axis with more than one value."""
    counts: dict[str, dict[str, int]] = {"status": {}, "prompt": {}}
    for entry in entries:
        values = {"status": entry.status, "prompt": str(entry.row["prompt_id"])}
        values.update(entry.axes)
        for axis, value in values.items():
            bucket = counts.setdefault(axis, {})
            bucket[value] = bucket.get(value, 0) + 1
    status_order = {s: i for i, s in enumerate(STATUSES)}
    result: list[tuple[str, list[tuple[str, int]]]] = [
        (
            "status",
            sorted(
                counts["status"].items(), key=lambda kv: status_order.get(kv[0], 99)
            ),
        )
    ]
    for axis, bucket in counts.items():
        if axis != "status" and len(bucket) > 1:
            result.append((axis, list(bucket.items())))
    return result


def _render_page(
    job: JobRow,
    status: Status,
    grids: Sequence[_Grid],
    entries: Sequence[_Entry],
    pages: Sequence[_Page],
) -> str:
    filters = _filters(entries)
    attr_of = {axis: f"f{i}" for i, (axis, _) in enumerate(filters)}
    total = sum(status.counts.values())
    out: list[str] = []
    w = out.append
    w("<!doctype html>\n<html lang=en>\n<head>\n<meta charset=utf-8>\n")
    w('<meta name=viewport content="width=device-width, initial-scale=1">\n')
    w('<meta name="color-scheme" content="light dark">\n')
    w(f"<title>{_e(job.name)} · runner review</title>\n<style>{_CSS}</style>\n")
    w("</head>\n<body>\n<header class=top>\n")
    w(f"<h1>{_e(job.name)}</h1>\n<p class=sub>")
    if job.model:
        w(f"<span>{_e(job.model)}</span>")
    w(f"<span>{total:,} items · {len(grids):,} prompts</span>")
    if job.job_path:
        w(f"<span class=path>{_e(job.job_path)}</span>")
    w("</p>\n<div class=totals>\n")
    for name in STATUSES:
        n = status.counts.get(name, 0)
        if n or name in ("succeeded", "failed", "blocked"):
            w(
                f"<div class='tot s-{_e(name)}'><b>{n:,}</b>"
                f"<span><i class=dot></i>{_e(name)}</span></div>\n"
            )
    usage = status.usage
    w(
        f"<div class=tot><b>{usage.get('totalTokenCount', 0):,}</b>"
        f"<span>tokens · {usage.get('promptTokenCount', 0):,} in · "
        f"{usage.get('candidatesTokenCount', 0):,} out</span></div>\n"
    )
    requests = status.requests
    unknown = requests.get("unknown", 0)
    w(
        f"<div class=tot><b>{requests.get('sent', 0):,}</b><span>requests"
        + (f" · {unknown:,} unknown outcome" if unknown else "")
        + "</span></div>\n"
    )
    w("</div>\n</header>\n")

    w("<form id=filters class=filters autocomplete=off onsubmit='return false'>\n")
    for axis, values in filters:
        attr = attr_of[axis]
        w(f"<fieldset><legend>{_e(_axis_title(axis))}</legend>")
        for value, n in values:
            cls = f" s-{_e(value)}" if axis == "status" else ""
            w(
                f"<label class='chip{cls}' title='double-click: only this'>"
                f"<input type=checkbox name={attr} "
                f"value='{_e(value)}' checked>"
                f"<span>{_e(_chip_label(axis, value))} <small>{n:,}</small></span>"
                "</label>"
            )
        w("</fieldset>\n")
    w(
        "<div class=fstat><span>showing <b id=shown>"
        f"{len(entries):,}</b> of {len(entries):,}</span>"
        "<button type=button id=reset>reset</button>"
        "<button type=button id=fold aria-expanded=true>hide filters</button>"
        "</div>\n</form>\n<main>\n"
    )
    if not entries:
        w("<p class=empty>This job has no items yet.</p>\n")
    w("<p id=nomatch class=empty hidden>No item matches these filters.</p>\n")
    sheets: dict[str, list[str]] = {}
    for page in pages:
        rel = f"{CONTACT_DIR}/{page.sheet.path.name}"
        sheets.setdefault(page.sheet.prompt_id, []).append(rel)
    for grid in grids:
        _render_grid(w, grid, attr_of, sheets.get(grid.prompt_id, []))
    w(_COMPARE_HTML)
    w(f"</main>\n<script>{_JS}</script>\n</body>\n</html>\n")
    return "".join(out)


def _render_grid(
    w: Any, grid: _Grid, attr_of: Mapping[str, str], sheets: Sequence[str]
) -> None:
    pid = grid.prompt_id
    counts: dict[str, int] = {}
    tokens = 0
    for entry in grid.entries:
        counts[entry.status] = counts.get(entry.status, 0) + 1
        tokens += entry.tokens or 0
    w(f"<section class=prompt id='p-{_e(pid)}' data-prompt='{_e(pid)}'>\n")
    w("<div class=phead><div class=ptitle>")
    w(f"<h2>{_e(pid)}</h2>")
    for n, text in enumerate(grid.texts[:3]):
        w(f"<p class='ptext{' alt' if n else ''}'>{_marked(text, grid.var_names)}</p>")
    if len(grid.texts) > 3:
        w(f"<p class='ptext alt'>… and {len(grid.texts) - 3:,} more wordings</p>")
    w("</div><div class=pside><p class=pcounts>")
    for name in STATUSES:
        if counts.get(name):
            w(f"<span class=s-{name}><i class=dot></i>{counts[name]:,} {name}</span>")
    w(f"<span>{tokens:,} tokens</span></p>")
    w("<div class=pact>")
    if sheets:
        w("<span class=sheets>contact sheet")
        for n, rel in enumerate(sheets, start=1):
            label = "" if len(sheets) == 1 else f" {n}"
            w(f" <a href='{_href(rel)}' target=_blank rel=noopener>PNG{label}</a>")
        w("</span>")
    w(
        f"<button type=button class=cmp data-compare='{_e(pid)}'>"
        f"Compare {len(grid.entries):,} side by side</button></div></div></div>\n"
    )
    w("<div class=scroll><table class=grid>\n<thead><tr><th class=corner>")
    w(_e(" / ".join(_axis_title(a) for a in grid.row_axes)))
    w("</th>")
    for c in range(len(grid.columns)):
        w(f"<th class=col data-col>{_e(grid.column_label(c))}</th>")
    w("</tr></thead>\n<tbody>\n")
    for r in range(len(grid.rows)):
        w("<tr><th class=rl scope=row>")
        for line in grid.row_lines(r):
            w(f"<span>{_e(line)}</span>")
        w("</th>")
        for c in range(len(grid.columns)):
            cell = grid.cells.get((r, c))
            if cell is None:
                w("<td class=void><div class=frame>not in plan</div></td>")
            else:
                _render_cell(w, grid, cell, attr_of)
        w("</tr>\n")
    w("</tbody></table></div>\n</section>\n")


def _render_cell(
    w: Any, grid: _Grid, entry: _Entry, attr_of: Mapping[str, str]
) -> None:
    row = entry.row
    status = entry.status
    values = {"status": status, "prompt": str(row["prompt_id"]), **entry.axes}
    data = "".join(
        f" data-{attr}='{_e(values[axis])}'"
        for axis, attr in attr_of.items()
        if axis in values
    )
    label = grid.entry_label(entry)
    title = f"{row['prompt']}\n{label}\nkey {str(row['key'])[:12]}"
    full = ""
    if entry.thumb is not None and entry.image is not None:
        full = f" data-full='{_href(entry.image)}'"
    w(
        f"<td class='cell s-{_e(status)}'{data}{full} data-label='{_e(label)}'"
        f" title='{_e(title)}'>"
    )
    if entry.thumb is not None and entry.image is not None and entry.thumb_size:
        width, height = entry.thumb_size
        w(
            f"<a class=frame href='{_href(entry.image)}' target=_blank rel=noopener>"
            f"<img src='{_href(entry.thumb)}' loading=lazy decoding=async"
            f" width={width} height={height} alt='{_e(label)}'></a>"
        )
    else:
        word = "no image" if status == "succeeded" else status
        w(
            f"<div class='frame ph'><b>{_e(word)}</b>"
            f"<span class=reason>{_e(entry.reason)}</span></div>"
        )
    attempts = int(row.get("attempts") or 0)
    meta = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    if entry.tokens is not None:
        meta += f" · {entry.tokens:,} tok"
    w(
        f"<div class=cap><span class='badge s-{_e(status)}'>{_e(status)}</span>"
        f"<span class=meta>{_e(meta)}</span></div>"
    )
    extra = list(row.get("outputs") or [])[1:]
    if extra:
        w("<div class=more>")
        for n, rel in enumerate(extra, start=2):
            w(f"<a href='{_href(str(rel))}' target=_blank rel=noopener>image {n}</a>")
        w("</div>")
    w("</td>")


_COMPARE_HTML = """
<div id=compare class=overlay hidden role=dialog aria-modal=true aria-labelledby=cmpt>
<div class=ohead><div><h2 id=cmpt></h2><p id=cmpx class=ptext></p></div>
<button type=button id=cmpclose aria-label="Close comparison">Close ✕</button></div>
<div id=cmpgrid class=cmpgrid></div>
</div>
"""

_CSS = """
:root{--bg:#f5f5f3;--panel:#fff;--ink:#1d1d1f;--muted:#6b6b73;--line:#e2e2de;
--frame:#ececea;--ph:#f1f1ee;--ok:#1f8a4c;--failed:#c62828;--blocked:#b26400;
--pending:#7a7a82;--running:#2563eb;--accent:#3b5bdb;--shadow:0 1px 2px #0000000f;
color-scheme:light dark;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif;background:var(--bg);color:var(--ink)}
@media (prefers-color-scheme:dark){:root{--bg:#131315;--panel:#1c1c1f;
--ink:#ececf1;--muted:#9b9ba5;--line:#2d2d33;--frame:#25252a;--ph:#212125;
--ok:#3fb871;--failed:#ef5350;--blocked:#f0a030;--pending:#9b9ba5;--running:#6b9bff;
--accent:#8ea2ff;--shadow:none}}
*{box-sizing:border-box}[hidden]{display:none!important}
body{margin:0}
.top{padding:22px 28px 14px}
h1{margin:0;font-size:24px;font-weight:650;letter-spacing:-.01em}
.sub{margin:4px 0 14px;color:var(--muted);display:flex;gap:14px;flex-wrap:wrap}
.sub .path{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
.totals{display:flex;flex-wrap:wrap;gap:10px}
.tot{background:var(--panel);border:1px solid var(--line);border-radius:10px;
padding:8px 14px;min-width:110px;box-shadow:var(--shadow)}
.tot b{display:block;font-size:20px;font-variant-numeric:tabular-nums}
.tot span{color:var(--muted);font-size:12px}
.dot{display:inline-block;width:8px;height:8px;border-radius:50%;
background:currentColor;margin-right:6px;vertical-align:1px}
.s-succeeded{--st:var(--ok)}.s-failed{--st:var(--failed)}
.s-blocked{--st:var(--blocked)}.s-pending{--st:var(--pending)}
.s-running{--st:var(--running)}
.tot .dot,.pcounts .dot{color:var(--st)}
.filters{position:sticky;top:0;z-index:5;display:flex;flex-wrap:wrap;gap:8px 22px;
align-items:flex-start;padding:10px 28px;background:color-mix(in srgb,var(--bg) 92%,
transparent);backdrop-filter:blur(8px);border-block:1px solid var(--line)}
fieldset{border:0;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:5px;
align-items:center;max-width:100%}
legend{float:left;margin-right:6px;color:var(--muted);font-size:11px;
text-transform:uppercase;letter-spacing:.06em;font-weight:600}
.chip input{position:absolute;opacity:0;pointer-events:none}
.chip span{display:inline-block;padding:3px 10px;border-radius:999px;
border:1px solid var(--line);background:var(--panel);cursor:pointer;
user-select:none;white-space:nowrap}
.chip[class*=s-] span::before{content:"";display:inline-block;width:7px;height:7px;
border-radius:50%;background:var(--st);margin-right:6px;vertical-align:1px}
.chip small{color:var(--muted);margin-left:3px;font-variant-numeric:tabular-nums}
.chip input:checked+span{border-color:color-mix(in srgb,var(--accent) 50%,var(--line));
background:color-mix(in srgb,var(--accent) 9%,var(--panel))}
.chip input:not(:checked)+span{opacity:.45;text-decoration:line-through}
.chip input:focus-visible+span{outline:2px solid var(--accent);outline-offset:2px}
.fstat{margin-left:auto;color:var(--muted);align-self:center;white-space:nowrap;
display:flex;gap:8px;align-items:center}
.filters.folded fieldset{display:none}
.fstat b{color:var(--ink);font-variant-numeric:tabular-nums}
button{font:inherit;color:inherit;background:var(--panel);border:1px solid var(--line);
border-radius:8px;padding:4px 12px;cursor:pointer}
button:hover{border-color:var(--accent)}
main{padding:18px 28px 60px}
.empty{color:var(--muted)}
.prompt{background:var(--panel);border:1px solid var(--line);border-radius:14px;
margin:0 0 22px;box-shadow:var(--shadow);content-visibility:auto;
contain-intrinsic-size:auto 640px}
.phead{display:flex;gap:20px;justify-content:space-between;align-items:flex-start;
padding:16px 18px 8px}
.ptitle{min-width:0}
.phead h2{margin:0 0 2px;font-size:16px;font-family:ui-monospace,SFMono-Regular,
Menlo,monospace;font-weight:600}
.ptext{margin:0;max-width:80ch;overflow-wrap:anywhere}
.ptext.alt{color:var(--muted);font-size:13px}
.pside{display:flex;flex-direction:column;align-items:flex-end;gap:8px;flex:none}
.pcounts{margin:0;display:flex;gap:12px;color:var(--muted);font-size:12px}
.pcounts span[class]{color:var(--ink)}
.pact{display:flex;gap:14px;align-items:center}
.sheets{color:var(--muted);font-size:12px}
.sheets a{color:var(--accent)}
.scroll{overflow-x:auto;padding:0 12px 14px}
table.grid{border-collapse:separate;border-spacing:8px}
.grid th{font-weight:600;font-size:12px;color:var(--muted);text-align:center}
.grid th.col{color:var(--ink);font-size:13px;padding-top:4px}
.grid th.corner{text-align:left;font-weight:500;font-size:11px;
text-transform:uppercase;letter-spacing:.05em;vertical-align:bottom}
.grid th.rl{text-align:left;vertical-align:middle;max-width:220px;padding-right:6px}
.rl span{display:block;color:var(--ink);font-weight:500;overflow-wrap:anywhere}
.rl span+span{color:var(--muted);font-weight:400}
td{vertical-align:top;padding:0;width:216px}
.frame{display:flex;align-items:center;justify-content:center;width:216px;
height:216px;border-radius:10px;background:var(--frame);overflow:hidden}
.frame img{width:100%;height:100%;object-fit:contain;display:block}
a.frame:hover{outline:2px solid var(--accent);outline-offset:2px}
.ph{flex-direction:column;gap:6px;padding:14px;text-align:center;
background:repeating-linear-gradient(135deg,var(--ph) 0 10px,var(--frame) 10px 20px);
border:1px dashed color-mix(in srgb,var(--st,var(--muted)) 45%,transparent)}
.ph b{color:var(--st,var(--muted));font-size:13px;text-transform:uppercase;
letter-spacing:.05em}
.ph .reason{font-size:12px;color:var(--ink);overflow-wrap:anywhere;display:-webkit-box;
-webkit-line-clamp:6;-webkit-box-orient:vertical;overflow:hidden}
.void .frame{color:var(--muted);font-size:12px;background:none;
border:1px dashed var(--line)}
.cap{display:flex;flex-wrap:wrap;justify-content:space-between;align-items:center;
gap:0 6px;padding:5px 2px 0;font-size:11px}
.badge{color:var(--st);font-weight:600;white-space:nowrap}
.badge::before{content:"";display:inline-block;width:7px;height:7px;
border-radius:50%;background:var(--st);margin-right:5px;vertical-align:1px}
.meta{color:var(--muted);font-variant-numeric:tabular-nums;white-space:nowrap}
.more{font-size:11.5px;display:flex;gap:8px;padding:2px}
.more a,.ohead a{color:var(--accent)}
td.off>*{visibility:hidden}
.gone{display:none}
body.modal{overflow:hidden}
.overlay{position:fixed;inset:0;z-index:10;background:var(--bg);overflow:auto;
padding:0 28px 40px}
.ohead{position:sticky;top:0;z-index:1;display:flex;justify-content:space-between;
gap:20px;align-items:center;padding:16px 0 12px;background:var(--bg);
border-bottom:1px solid var(--line);margin-bottom:18px}
.ohead h2{margin:0;font-size:18px;font-family:ui-monospace,SFMono-Regular,Menlo,
monospace}
.cmpgrid{display:grid;grid-template-columns:repeat(var(--cols,3),minmax(280px,1fr));
gap:18px;align-items:start}
.cmpgrid.free{grid-template-columns:repeat(auto-fill,minmax(320px,1fr))}
.cmpnone{color:var(--muted)}
.card{margin:0;background:var(--panel);border:1px solid var(--line);
border-radius:12px;padding:10px;box-shadow:var(--shadow)}
.card>a,.card>.frame{display:flex;align-items:center;justify-content:center;
width:100%;height:auto;aspect-ratio:1;max-height:75vh;border-radius:8px;
background:var(--frame);overflow:hidden}
.card img{width:100%;height:100%;object-fit:contain;display:block}
.card>.frame.ph{aspect-ratio:2}
.card .lbl{font-weight:600;margin:8px 2px 0}
.var{color:var(--accent);font-family:ui-monospace,SFMono-Regular,Menlo,monospace;
font-size:.92em}
"""

# Light on purpose: the rows are rendered in the HTML; this only toggles classes in
# one pass (no layout reads), so a filter click costs one style recalc and layout.
_JS = """
"use strict";
(() => {
const $ = (s, r = document) => r.querySelector(s);
const $$ = (s, r = document) => Array.from(r.querySelectorAll(s));
const boxes = $$("#filters input[type=checkbox]");
const shown = $("#shown");
const sections = $$("section.prompt").map((sec) => ({
  sec,
  heads: $$("thead th.col", sec),
  rows: $$("tbody tr", sec).map((tr) => ({ tr, cells: $$("td", tr) })),
}));
function apply() {
  const allowed = new Map();
  for (const b of boxes) {
    if (!allowed.has(b.name)) allowed.set(b.name, new Set());
    if (b.checked) allowed.get(b.name).add(b.value);
  }
  const axes = [...allowed];
  let count = 0;
  for (const s of sections) {
    const colOn = s.heads.map(() => false);
    let secOn = false;
    for (const r of s.rows) {
      let rowOn = false;
      r.cells.forEach((td, i) => {
        if (!td.classList.contains("cell")) return;
        let ok = true;
        for (const [axis, set] of axes) {
          const v = td.dataset[axis];
          if (v !== undefined && !set.has(v)) { ok = false; break; }
        }
        td.classList.toggle("off", !ok);
        if (ok) { rowOn = true; colOn[i] = true; count++; }
      });
      r.tr.hidden = !rowOn;
      if (rowOn) secOn = true;
    }
    s.heads.forEach((th, i) => th.classList.toggle("gone", !colOn[i]));
    for (const r of s.rows) {
      r.cells.forEach((td, i) => td.classList.toggle("gone", !colOn[i]));
    }
    s.sec.hidden = !secOn;
  }
  shown.textContent = count.toLocaleString("en-US");
  $("#nomatch").hidden = count > 0 || !sections.length;
}
$("#filters").addEventListener("change", apply);
// double-click a chip: keep only that value of its axis
$("#filters").addEventListener("dblclick", (e) => {
  const chip = e.target.closest("label.chip");
  if (!chip) return;
  const box = $("input", chip);
  for (const b of boxes) if (b.name === box.name) b.checked = b === box;
  apply();
});
$("#fold").addEventListener("click", (e) => {
  const folded = $("#filters").classList.toggle("folded");
  e.target.textContent = folded ? "show filters" : "hide filters";
  e.target.setAttribute("aria-expanded", String(!folded));
});
$("#reset").addEventListener("click", () => {
  for (const b of boxes) b.checked = true;
  apply();
});
const overlay = $("#compare");
const grid = $("#cmpgrid");
let lastFocus = null;
// Same columns as the prompt's grid (an empty slot where a cell is missing or
// filtered out), so one column keeps one aspect ratio; free flow past MAX_COLS.
const MAX_COLS = 6;
function openCompare(id) {
  const sec = document.getElementById("p-" + id);
  if (!sec) return;
  const cols = $$("thead th.col", sec).map((th) => !th.classList.contains("gone"));
  const width = cols.filter(Boolean).length;
  const aligned = width <= MAX_COLS;
  const slots = [];
  let count = 0;
  for (const tr of $$("tbody tr", sec)) {
    if (tr.hidden) continue;
    $$("td", tr).forEach((td, i) => {
      if (!cols[i]) return;
      if (td.classList.contains("cell") && !td.classList.contains("off")) {
        slots.push(card(td));
        count++;
      } else if (aligned) {
        slots.push(document.createElement("div"));
      }
    });
  }
  if (!count) {
    const none = document.createElement("p");
    none.className = "cmpnone";
    none.textContent = "No variant of this prompt passes the filters.";
    slots.push(none);
  }
  grid.classList.toggle("free", !aligned);
  grid.style.setProperty("--cols", String(Math.max(1, width)));
  grid.replaceChildren(...slots);
  $("#cmpt").textContent = id + " · " + count + " shown";
  $("#cmpx").textContent = $(".ptext", sec).textContent;
  lastFocus = document.activeElement;
  overlay.hidden = false;
  document.body.classList.add("modal");
  $("#cmpclose").focus();
}
function card(td) {
  const fig = document.createElement("figure");
  fig.className = "card " + [...td.classList].filter((c) => c.startsWith("s-"))
    .join(" ");
  if (td.dataset.full) {
    const a = document.createElement("a");
    a.href = td.dataset.full; a.target = "_blank"; a.rel = "noopener";
    const img = document.createElement("img");
    img.src = td.dataset.full; img.alt = td.dataset.label;
    img.loading = "lazy"; img.decoding = "async";
    a.append(img);
    fig.append(a);
  } else {
    fig.append($(".frame", td).cloneNode(true));
  }
  const label = document.createElement("figcaption");
  label.className = "lbl";
  label.textContent = td.dataset.label || "(single item)";
  fig.append(label, $(".cap", td).cloneNode(true));
  const more = $(".more", td);
  if (more) fig.append(more.cloneNode(true));
  return fig;
}
function closeCompare() {
  overlay.hidden = true;
  grid.replaceChildren();
  document.body.classList.remove("modal");
  if (lastFocus) lastFocus.focus();
}
document.addEventListener("click", (e) => {
  const b = e.target.closest("button.cmp");
  if (b) openCompare(b.dataset.compare);
});
$("#cmpclose").addEventListener("click", closeCompare);
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && !overlay.hidden) closeCompare();
});
})();
"""
