"""Contact sheets: `contact/<prompt>.png`, one labelled grid image per prompt that
has at least two cells, and `contact/+singles-001.png`, ...: the prompts with a
single cell, SINGLES_PER_PAGE to a shared page in plan order, each cell captioned
with its prompt (SPEC 4).

Owns which sheets a job has (`sheet_groups`: a prompt's grid, or a page of
single-cell prompts), a sheet's layout (cell size, pages of whole rows and columns
so a page stays within SHEET_MAX_SIDE and SHEET_MAX_PIXELS), page names, the
signature embedded in each PNG that lets an up-to-date page be kept, removing
surplus pages it wrote earlier (and the one-cell sheets of prompts now grouped),
and drawing (composed from the thumbnails, never the full images). Must not write
anywhere but `contact/`.

A page whose prompt sends reference images ends with a legend strip: each set the
prompt uses (`r0`, ...) with its files' thumbnails and paths as written. On every
page rather than on a sheet of its own: a contact sheet is often passed around as
one file, and a cell labelled `refs r1` means nothing without it.

Fonts: Pillow's bundled FreeType font (Aileron), so no system font is needed; it
covers Latin scripts, and text in other scripts draws as boxes on the sheets (the
page shows it as the browser would).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from runner import outputs
from runner.review.grid import axis_title
from runner.review.legend import sets_of
from runner.review.thumbnails import shrink
from runner.review.workers import parallel

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from runner.review.grid import Entry, Grid
    from runner.review.legend import ReferenceSet

CONTACT_DIR = "contact"

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
LEGEND_THUMB = 64  # px, a reference's thumbnail in the legend strip
LEGEND_SLOT = 150  # px across per reference: its thumbnail, its path below
LEGEND_MIN_WIDTH = 2 * SHEET_MARGIN + 3 * LEGEND_SLOT  # a page with a legend
LEGEND_MAX_HEIGHT = SHEET_MAX_SIDE // 4  # sets past this are named, not drawn
# zlib level 1: half the time of the default 6 for files about 15% larger (most of
# what is left is Pillow's per-row PNG filtering, which holds the GIL).
SHEET_COMPRESS_LEVEL = 1
CELL_CROP_PX = 4  # a decoded thumbnail at most this much larger is cropped to a cell

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

# Prompts with one cell: SINGLES_COLUMNS x SINGLES_ROWS to a page, cells of
# SINGLES_CELL px captioned with the prompt's id and the start of its text. The
# pages' names start with '+', which no prompt's sheet does.
SINGLES_STEM = "+singles"
SINGLES_COLUMNS = 10
SINGLES_ROWS = 10
SINGLES_PER_PAGE = SINGLES_COLUMNS * SINGLES_ROWS
SINGLES_CELL = 192
SINGLES_CAPTION_LINES = 2

_SIGNATURE_KEY = "runner-review"
_PROMPT_KEY = "runner-review-prompt"  # the prompt's id; SINGLES_STEM on shared pages
_LAYOUT_VERSION = "2"  # bump when the drawing changes, so old sheets are redrawn


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
    legend: tuple[str, ...] = ()  # the reference sets in its legend strip
    legend_top: int | None = None  # y of that strip (None: no strip)
    # The prompts it shows: (prompt_id,), or a shared page's single-cell prompts
    # (whose prompt_id is "" and columns and rows empty).
    prompts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SheetGroup:
    """What one contact sheet shows: a prompt's grid of two cells or more, or a
    shared page (`number` of `pages`) of prompts with one cell each."""

    key: str  # the prompt's id, or the shared page's file stem
    grids: tuple[Grid, ...]
    number: int = 0  # 1-based page number of a shared page; 0 for a prompt's sheet
    pages: int = 0

    @property
    def shared(self) -> bool:
        return self.number > 0


@dataclass(frozen=True, slots=True)
class SheetPage:
    """One contact-sheet page: what it shows, and all a worker needs to draw it."""

    sheet: ContactSheet
    grid: Grid
    layout: _SheetLayout
    rows: range
    cols: range
    signature: str  # of everything drawn; embedded in the PNG


@dataclass(frozen=True, slots=True)
class SinglesPage:
    """A shared page of single-cell prompts, and all a worker needs to draw it."""

    sheet: ContactSheet
    grids: tuple[Grid, ...]
    legend: tuple[ReferenceSet, ...]  # the sets its prompts use
    signature: str


Page: TypeAlias = "SheetPage | SinglesPage"


def sheet_groups(grids: Sequence[Grid]) -> list[SheetGroup]:
    """The job's contact sheets: one per prompt with two cells or more, in plan
    order, then the shared pages of the prompts with one cell."""
    singles = [g for g in grids if _single(g)]
    pages = -(-len(singles) // SINGLES_PER_PAGE)
    groups = [SheetGroup(g.prompt_id, (g,)) for g in grids if not _single(g)]
    for n in range(pages):
        chunk = tuple(singles[n * SINGLES_PER_PAGE : (n + 1) * SINGLES_PER_PAGE])
        groups.append(SheetGroup(_singles_name(n + 1)[:-4], chunk, n + 1, pages))
    return groups


def first_pages(grids: Sequence[Grid]) -> set[str]:
    """The file names of the prompts' first pages: a later page of another prompt
    must not take one (see `plan_group`)."""
    return {_safe_name(g.prompt_id) + ".png" for g in grids}


def plan_sheets(
    job_folder: Path, grids: Sequence[Grid], legend: Sequence[ReferenceSet] = ()
) -> list[Page]:
    """Every sheet's pages, each `written` if its content changed (and so must be
    drawn); removes what `remove_stale_sheets` does. `legend`: the job's reference
    sets, drawn on the pages of prompts that use them."""
    taken = first_pages(grids)
    groups = sheet_groups(grids)
    pages = {g.key: plan_group(job_folder, g, legend, taken) for g in groups}
    remove_stale_sheets(job_folder, groups, pages)
    return [page for group in pages.values() for page in group]


def remove_stale_sheets(
    job_folder: Path, groups: Sequence[SheetGroup], pages: Mapping[str, Sequence[Page]]
) -> None:
    """Remove surplus pages an earlier, larger grid needed, shared pages past the
    last one, and the sheets of prompts now on shared pages (only files this
    package wrote). `pages`: each group's, by its key."""
    folder = job_folder / CONTACT_DIR
    numbered = _numbered_pages(folder)
    for group in groups:
        if not group.shared:
            keep = {p.sheet.path.name for p in pages[group.key]}
            stem = _safe_name(group.key)
            _remove_surplus_pages(numbered.get(stem, []), group.key, keep)
    singles = [g.prompt_id for group in groups if group.shared for g in group.grids]
    _remove_grouped(folder, singles, sum(1 for g in groups if g.shared))


def plan_group(
    job_folder: Path,
    group: SheetGroup,
    legend: Sequence[ReferenceSet],
    taken: set[str],
) -> list[Page]:
    """One sheet's pages, each `written` unless the file on disk carries its
    signature. `taken`: `first_pages` of every prompt of the job."""
    folder = job_folder / CONTACT_DIR
    if group.shared:
        return [_describe_singles(folder, group, legend)]
    (grid,) = group.grids
    layout = _sheet_layout(grid, sets_of(grid, legend))
    row_chunks = _chunks(len(grid.rows), layout.rows_per_page)
    col_chunks = _chunks(len(grid.columns), layout.cols_per_page)
    pages = [(rs, cs) for rs in row_chunks for cs in col_chunks]
    names = _page_names(_safe_name(grid.prompt_id), len(pages), taken)
    return [
        _describe_page(folder / name, grid, layout, rs, cs, n + 1, len(pages))
        for n, (name, (rs, cs)) in enumerate(zip(names, pages, strict=True))
    ]


def draw_sheets(pages: Sequence[Page]) -> None:
    """Draw and write, on the worker threads, every page whose content changed."""
    parallel(draw_page, [p for p in pages if p.sheet.written])


def draw_page(page: Page) -> None:
    """Draw one page and write it (this thread)."""
    if isinstance(page, SinglesPage):
        _draw_singles(page)
    else:
        _draw_page(page)


def _single(grid: Grid) -> bool:
    return len(grid.entries) == 1


def _singles_name(number: int) -> str:
    return f"{SINGLES_STEM}-{number:03d}.png"


# -- layout and pages ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _SheetLayout:
    cell: int
    row_label_w: int
    left: int
    top: int
    cols_per_page: int
    rows_per_page: int
    title_lines: int
    legend: tuple[ReferenceSet, ...]


def _sheet_layout(grid: Grid, legend: tuple[ReferenceSet, ...]) -> _SheetLayout:
    label = _font(SHEET_LABEL_PX)
    line = _line_height(label)
    widest = max(
        (
            _text_width(SHEET_LABEL_PX, t)
            for r in range(len(grid.rows))
            for t in grid.row_lines(r)
        ),
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
    width = _page_width(legend, left + cols_per_page * pitch - SHEET_GAP)
    # the narrowest page (a last chunk of columns) has the tallest legend
    narrowest = n_cols % cols_per_page or cols_per_page
    legend_h = _legend_layout(
        legend, _page_width(legend, left + narrowest * pitch - SHEET_GAP)
    ).height
    max_h = min(SHEET_MAX_SIDE, SHEET_MAX_PIXELS // width) - legend_h
    rows_per_page = max(1, (max_h - top - SHEET_MARGIN + SHEET_GAP) // pitch)
    return _SheetLayout(
        cell, row_label_w, left, top, cols_per_page, rows_per_page, title_lines, legend
    )


def _page_width(legend: Sequence[ReferenceSet], grid_right: int) -> int:
    """A page's width: its grid's, and wide enough for a legend strip."""
    width = grid_right + SHEET_MARGIN
    return max(width, LEGEND_MIN_WIDTH) if legend else width


def _chunks(n: int, size: int) -> list[range]:
    return [range(start, min(n, start + size)) for start in range(0, n, size)]


def _describe_page(
    path: Path,
    grid: Grid,
    layout: _SheetLayout,
    rows: range,
    cols: range,
    number: int,
    pages: int,
) -> SheetPage:
    """A page's geometry, labels and the signature of what it shows; its sheet is
    `written` (must be drawn) unless the file on disk carries that signature."""
    pitch = layout.cell + SHEET_GAP
    width = _page_width(layout.legend, layout.left + len(cols) * pitch - SHEET_GAP)
    grid_bottom = layout.top + len(rows) * pitch - SHEET_GAP
    strip = _legend_layout(layout.legend, width)
    size = (width, grid_bottom + strip.height + SHEET_MARGIN)
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
                [
                    [s.label, [[f.path, f.thumb, f.note] for f in s.files]]
                    for s in layout.legend
                ],
                width,
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
        legend=tuple(s.label for s in layout.legend),
        legend_top=grid_bottom + SHEET_GAP if layout.legend else None,
        prompts=(grid.prompt_id,),
    )
    return SheetPage(sheet, grid, layout, rows, cols, signature)


def _singles_geometry(
    count: int, legend: Sequence[ReferenceSet]
) -> tuple[int, int, int, int]:
    """(columns, width, top, caption height) of a shared page of `count` prompts."""
    columns = min(SINGLES_COLUMNS, count)
    small = _font(SHEET_SMALL_PX)
    caption = SINGLES_CAPTION_LINES * _line_height(small) + 2
    grid_right = SHEET_MARGIN + columns * (SINGLES_CELL + SHEET_GAP) - SHEET_GAP
    width = _page_width(legend, grid_right)
    top = SHEET_MARGIN + _line_height(_font(SHEET_TITLE_PX)) + _line_height(small)
    return columns, width, top + SHEET_GAP, caption


def _describe_singles(
    folder: Path, group: SheetGroup, legend: Sequence[ReferenceSet]
) -> SinglesPage:
    """A shared page's geometry and signature; `written` unless the file on disk
    carries that signature."""
    used = {e.axes.get("references") for g in group.grids for e in g.entries}
    sets = tuple(s for s in legend if s.label in used)
    columns, width, top, caption = _singles_geometry(len(group.grids), sets)
    rows = -(-len(group.grids) // columns)
    grid_bottom = top + rows * (SINGLES_CELL + caption + SHEET_GAP) - SHEET_GAP
    strip = _legend_layout(sets, width)
    size = (width, grid_bottom + strip.height + SHEET_MARGIN)
    cells = []
    for grid in group.grids:
        (entry,) = grid.entries
        text = grid.texts[0] if grid.texts else ""
        cells.append(
            [grid.prompt_id, text, entry.status, entry.reason, entry.thumb]
            + [entry.thumb_mtime]
        )
    signature = hashlib.sha256(
        json.dumps(
            [
                _LAYOUT_VERSION,
                "singles",
                [SINGLES_CELL, SHEET_GAP, SHEET_MARGIN, SHEET_SMALL_PX, SHEET_TITLE_PX],
                group.number,
                group.pages,
                cells,
                [[s.label, [[f.path, f.thumb, f.note] for f in s.files]] for s in sets],
                width,
            ],
            ensure_ascii=False,
        ).encode("utf-8")
    ).hexdigest()
    path = folder / _singles_name(group.number)
    sheet = ContactSheet(
        path=path,
        prompt_id="",
        page=group.number,
        pages=group.pages,
        columns=(),
        rows=(),
        cell=SINGLES_CELL,
        left=SHEET_MARGIN,
        top=top,
        size=size,
        written=_sheet_signature(path) != signature,
        legend=tuple(s.label for s in sets),
        legend_top=grid_bottom + SHEET_GAP if sets else None,
        prompts=tuple(g.prompt_id for g in group.grids),
    )
    return SinglesPage(sheet, group.grids, sets, signature)


def _draw_singles(page: SinglesPage) -> None:
    """A shared page: a title, then each prompt's one cell with its id and the
    start of its text below."""
    sheet = page.sheet
    columns, width, top, caption = _singles_geometry(len(page.grids), page.legend)
    canvas = Image.new("RGB", sheet.size, SHEET_BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    title, small = _font(SHEET_TITLE_PX), _font(SHEET_SMALL_PX)
    room = width - 2 * SHEET_MARGIN
    heading = "Prompts with a single item" + (
        f"   page {sheet.page} of {sheet.pages}" if sheet.pages > 1 else ""
    )
    draw.text(
        (SHEET_MARGIN, SHEET_MARGIN),
        _fit(heading, title, room),
        font=title,
        fill=SHEET_INK,
    )
    first, last = page.grids[0].prompt_id, page.grids[-1].prompt_id
    count = len(page.grids)
    sub = f"{count} prompt{'s' if count != 1 else ''}: {first}" + (
        f" to {last}" if count > 1 else ""
    )
    draw.text(
        (SHEET_MARGIN, SHEET_MARGIN + _line_height(title)),
        _fit(sub, small, room),
        font=small,
        fill=SHEET_MUTED,
    )
    job_folder = sheet.path.parent.parent
    line = _line_height(small)
    for n, grid in enumerate(page.grids):
        row, col = divmod(n, columns)
        x = SHEET_MARGIN + col * (SINGLES_CELL + SHEET_GAP)
        y = top + row * (SINGLES_CELL + caption + SHEET_GAP)
        (entry,) = grid.entries
        _draw_cell(canvas, draw, job_folder, entry, (x, y, SINGLES_CELL))
        y += SINGLES_CELL + 2
        draw.text(
            (x, y),
            _fit(grid.prompt_id, small, SINGLES_CELL),
            font=small,
            fill=SHEET_INK,
        )
        text = grid.texts[0] if grid.texts else ""
        draw.text(
            (x, y + line),
            _fit(text, small, SINGLES_CELL),
            font=small,
            fill=SHEET_MUTED,
        )
    if sheet.legend_top is not None:
        _draw_legend(canvas, draw, sheet, page.legend)
    _write_png(canvas, sheet.path, page.signature, SINGLES_STEM)


def _safe_name(prompt_id: str) -> str:
    """A file name stem from a prompt id (ids are already [A-Za-z0-9._-])."""
    cleaned = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in prompt_id)
    return cleaned.lstrip(".") or "prompt"


def _page_names(stem: str, pages: int, taken: set[str]) -> list[str]:
    """`stem.png`, then `stem_2.png`...; `+` (never in a prompt id) if that clashes
    with another prompt's first page (later pages cannot clash: what follows the
    last `_` is a number)."""
    names = [f"{stem}.png"]
    for n in range(2, pages + 1):
        name = f"{stem}_{n}.png"
        if name in taken:
            name = f"{stem}+{n}.png"
        names.append(name)
    return names


def _sheet_signature(path: Path) -> str | None:
    try:
        with Image.open(path) as existing:  # tEXt chunks precede the pixels
            value = existing.info.get(_SIGNATURE_KEY)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, str) else None


def _numbered_pages(folder: Path) -> dict[str, list[Path]]:
    """The files of `folder` named like a later page (`<stem>_<n>.png` or
    `<stem>+<n>.png`), by stem: one listing for every prompt."""
    try:
        names = os.listdir(folder)
    except OSError:
        return {}
    found: dict[str, list[Path]] = {}
    for name in names:
        if not name.endswith(".png"):
            continue
        cut = max(name.rfind("_"), name.rfind("+"))
        if cut > 0 and name[cut + 1 : -len(".png")].isdigit():
            found.setdefault(name[:cut], []).append(folder / name)
    return found


def _remove_surplus_pages(pages: list[Path], prompt_id: str, keep: set[str]) -> None:
    """Pages of this prompt's sheet that an earlier, larger grid needed (among
    `pages`, the numbered pages named after it)."""
    for path in pages:
        if path.name not in keep:
            _remove_ours(path, prompt_id)


def _remove_grouped(folder: Path, singles: Sequence[str], pages: int) -> None:
    """Shared pages past the last one, and the sheets single-cell prompts had
    before they were grouped (or when they had more cells)."""
    try:
        names = set(os.listdir(folder))
    except OSError:
        return
    for prompt_id in singles:
        name = _safe_name(prompt_id) + ".png"
        if name in names:
            _remove_ours(folder / name, prompt_id)
    head = SINGLES_STEM + "-"
    for name in names:
        number = name[len(head) : -len(".png")]
        if name.startswith(head) and number.isdigit() and int(number) > pages:
            _remove_ours(folder / name, SINGLES_STEM)


def _remove_ours(path: Path, prompt_id: str) -> None:
    """Delete `path` if this package wrote it for `prompt_id`."""
    try:
        with Image.open(path) as existing:
            ours = existing.info.get(_PROMPT_KEY) == prompt_id
    except (OSError, ValueError):
        return
    if ours:
        path.unlink(missing_ok=True)


# -- drawing ---------------------------------------------------------------------------


def _draw_page(page: SheetPage) -> None:
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
    if sheet.legend_top is not None:
        _draw_legend(canvas, draw, sheet, layout.legend)

    _write_png(canvas, sheet.path, page.signature, grid.prompt_id)


def _write_png(canvas: Image.Image, path: Path, signature: str, owner: str) -> None:
    """A page's PNG, with its signature and its prompt (or SINGLES_STEM), written
    whole by rename (not synced: it is drawn again from the thumbnails)."""
    info = PngImagePlugin.PngInfo()
    info.add_text(_SIGNATURE_KEY, signature)
    info.add_text(_PROMPT_KEY, owner)
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG", pnginfo=info, compress_level=SHEET_COMPRESS_LEVEL)
    canvas.close()
    outputs.write_whole(path, buffer.getvalue())


def _draw_title(
    draw: ImageDraw.ImageDraw,
    grid: Grid,
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
        corner = " / ".join(axis_title(a) for a in grid.row_axes)
        label = _font(SHEET_LABEL_PX)
        y = layout.top - SHEET_GAP - _line_height(label)
        shown = _fit(corner, small, layout.row_label_w - 8)
        draw.text((SHEET_MARGIN, y + 3), shown, font=small, fill=SHEET_MUTED)


def _draw_cell(
    canvas: Image.Image,
    draw: ImageDraw.ImageDraw,
    job_folder: Path,
    entry: Entry | None,
    box: tuple[int, int, int],
) -> None:
    x, y, cell = box
    if entry is not None and entry.thumb is not None:
        try:
            with Image.open(job_folder / entry.thumb) as thumb:
                # JPEG DCT scaling: a thumbnail twice the cell decodes at cell size
                thumb.draft("RGB", _fit_size(thumb.size, cell))
                image = _fit_cell(thumb.convert("RGB"), cell)
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


@dataclass(frozen=True, slots=True)
class _LegendLayout:
    sets: tuple[ReferenceSet, ...]  # those drawn
    per_line: int  # references per line of thumbnails
    omitted: int  # sets past LEGEND_MAX_HEIGHT, named on one line
    height: int  # from the grid's bottom edge to the strip's bottom edge


def _legend_layout(legend: Sequence[ReferenceSet], width: int) -> _LegendLayout:
    """Where the strip's parts go on a page `width` px wide; height 0 without sets."""
    if not legend:
        return _LegendLayout((), 1, 0, 0)
    per_line = max(1, (width - 2 * SHEET_MARGIN) // LEGEND_SLOT)
    small, label = _font(SHEET_SMALL_PX), _font(SHEET_LABEL_PX)
    # the gap and a rule above, the title, then each set: its label, its lines
    height = 2 * SHEET_GAP + _line_height(small)
    shown: list[ReferenceSet] = []
    for ref_set in legend:
        lines = -(-len(ref_set.files) // per_line)
        more = _line_height(label) + lines * _legend_slot_height()
        if height + more + _line_height(small) > LEGEND_MAX_HEIGHT and shown:
            break
        shown.append(ref_set)
        height += more
    omitted = len(legend) - len(shown)
    if omitted:
        height += _line_height(small)
    return _LegendLayout(tuple(shown), per_line, omitted, height)


def _legend_slot_height() -> int:
    return LEGEND_THUMB + 4 + _line_height(_font(SHEET_SMALL_PX)) + SHEET_GAP


def _draw_legend(
    canvas: Image.Image,
    draw: ImageDraw.ImageDraw,
    sheet: ContactSheet,
    legend: Sequence[ReferenceSet],
) -> None:
    """The strip under the grid: each set's label, its files' thumbnails and paths."""
    assert sheet.legend_top is not None
    width = sheet.size[0]
    strip = _legend_layout(legend, width)
    small, label = _font(SHEET_SMALL_PX), _font(SHEET_LABEL_PX)
    job_folder = sheet.path.parent.parent
    y = sheet.legend_top + SHEET_GAP
    draw.line((SHEET_MARGIN, y - 4, width - SHEET_MARGIN, y - 4), fill=SHEET_LETTERBOX)
    draw.text((SHEET_MARGIN, y), "Reference sets", font=small, fill=SHEET_MUTED)
    y += _line_height(small)
    for ref_set in strip.sets:
        count = len(ref_set.files)
        heading = f"{ref_set.label}  ·  {count} file{'s' if count != 1 else ''}"
        draw.text((SHEET_MARGIN, y), heading, font=label, fill=SHEET_INK)
        y += _line_height(label)
        for n, ref in enumerate(ref_set.files):
            line, slot = divmod(n, strip.per_line)
            x = SHEET_MARGIN + slot * LEGEND_SLOT
            top = y + line * _legend_slot_height()
            _draw_reference(canvas, draw, job_folder, ref.thumb, (x, top))
            name = _fit_left(ref.path, small, LEGEND_SLOT - 8)
            draw.text((x, top + LEGEND_THUMB + 4), name, font=small, fill=SHEET_INK)
        y += -(-count // strip.per_line) * _legend_slot_height()
    if strip.omitted:
        rest = ", ".join(s.label for s in legend[len(strip.sets) :])
        text = f"and {strip.omitted} more sets ({rest}): see index.html"
        draw.text(
            (SHEET_MARGIN, y),
            _fit(text, small, width - 2 * SHEET_MARGIN),
            font=small,
            fill=SHEET_MUTED,
        )


def _draw_reference(
    canvas: Image.Image,
    draw: ImageDraw.ImageDraw,
    job_folder: Path,
    thumb: str | None,
    at: tuple[int, int],
) -> None:
    x, y = at
    box = (x, y, x + LEGEND_THUMB - 1, y + LEGEND_THUMB - 1)
    image = None
    if thumb is not None:
        try:
            with Image.open(job_folder / thumb) as opened:
                opened.draft("RGB", (LEGEND_THUMB, LEGEND_THUMB))
                image = opened.convert("RGB")
            image.thumbnail((LEGEND_THUMB, LEGEND_THUMB), Image.Resampling.LANCZOS)
        except (OSError, ValueError):
            image = None
    if image is None:  # the page says why; here a labelled placeholder
        draw.rectangle(box, fill=PLACEHOLDER_RGB)
        small = _font(SHEET_SMALL_PX)
        draw.text((x + 6, y + 6), "missing", font=small, fill=STATUS_RGB["missing"])
        return
    draw.rectangle(box, fill=SHEET_LETTERBOX)
    dx, dy = (LEGEND_THUMB - image.width) // 2, (LEGEND_THUMB - image.height) // 2
    canvas.paste(image, (x + dx, y + dy))


def _fit_cell(image: Image.Image, cell: int) -> Image.Image:
    """A thumbnail decoded at reduced scale, fitted into a `cell` px square: a few
    px too large (a 128 px decode for a 127 px cell) it is cropped, not resampled."""
    width, height = image.size
    if max(width, height) - cell <= CELL_CROP_PX:
        left, top = max(0, (width - cell) // 2), max(0, (height - cell) // 2)
        return image.crop((left, top, left + min(width, cell), top + min(height, cell)))
    return shrink(image, cell)


def _fit_size(size: tuple[int, int], box: int) -> tuple[int, int]:
    """`size` scaled to fit a `box` px square, keeping its aspect ratio."""
    scale = min(1.0, box / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


# -- text ------------------------------------------------------------------------------


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


@functools.lru_cache(maxsize=4096)
def _text_width(size: int, text: str) -> float:
    """`text`'s width in px at `size`: row labels repeat across prompts, and
    measuring each again cost seconds at 100,000 items."""
    return _font(size).getlength(text)


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


def _fit_left(text: str, font: ImageFont.FreeTypeFont, width: int) -> str:
    """`text`, its start replaced by an ellipsis to fit `width` px: the end of a
    path (the file name) is what tells two references apart."""
    if font.getlength(text) <= width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if font.getlength("…" + text[len(text) - mid :]) <= width:
            lo = mid
        else:
            hi = mid - 1
    return "…" + text[len(text) - lo :]


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
