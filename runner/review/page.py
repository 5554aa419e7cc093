"""The gallery page: `index.html`, one self-contained file per job.

Owns the page's markup: job totals, the filter bar (a filter by mark once an image
is marked), one section per prompt (its grid of cells with a grounded image's
sources and search suggestions, the shown image's mark and note, read-only,
counts, contact-sheet links, comparison button) and the comparison overlay. Each
cell names its image (`data-image`) and mark (`data-mk`): the served gallery's
controls (serve.js, added by runner.review.serve) hook in there.
Its style and behaviour are the package data files `gallery.css` and `gallery.js`,
inlined into every page, so the page needs no server and makes no request (it works
from file://). Must not read images, draw, or write anything but `index.html`.
"""

from __future__ import annotations

import functools
import html
from collections import Counter
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from runner import outputs
from runner.review.grid import axis_title, chip_label, filter_counts
from runner.review.sheets import CONTACT_DIR
from runner.store import STATUSES

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from runner.review.grid import Entry, Grid
    from runner.review.grounding import Grounding
    from runner.review.sheets import ContactSheet
    from runner.store import JobRow, Status

INDEX = "index.html"
# A cell's `data-mk`, the name of its filter: the shown image's mark, or "none".
MARK_FILTER = "mk"
MARK_NONE = "none"
MARK_LABELS = {"star": "★ starred", "reject": "✕ rejected", MARK_NONE: "unmarked"}


def render_page(
    job: JobRow,
    status: Status,
    grids: Sequence[Grid],
    entries: Sequence[Entry],
    sheets: Sequence[ContactSheet],
) -> str:
    filters = filter_counts(entries)
    attr_of = {axis: f"f{i}" for i, (axis, _) in enumerate(filters)}
    total = sum(status.counts.values())
    out: list[str] = []
    w = out.append
    w("<!doctype html>\n<html lang=en>\n<head>\n<meta charset=utf-8>\n")
    w('<meta name=viewport content="width=device-width, initial-scale=1">\n')
    w('<meta name="color-scheme" content="light dark">\n')
    w(f"<title>{_e(job.name)} · runner review</title>\n")
    w(f"<style>\n{_asset('gallery.css')}</style>\n")
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

    # data-mk-filter: gallery.js filters on a cell's data-mk, so the served page
    # may add its filter by mark here (serve.js)
    w(
        "<form id=filters class=filters autocomplete=off onsubmit='return false'"
        " data-mk-filter>\n"
    )
    for axis, values in filters:
        attr = attr_of[axis]
        w(f"<fieldset><legend>{_e(axis_title(axis))}</legend>")
        for value, n in values:
            cls = f" s-{_e(value)}" if axis == "status" else ""
            w(
                f"<label class='chip{cls}' title='double-click: only this'>"
                f"<input type=checkbox name={attr} "
                f"value='{_e(value)}' checked>"
                f"<span>{_e(chip_label(axis, value))} <small>{n:,}</small></span>"
                "</label>"
            )
        w("</fieldset>\n")
    if any(entry.mark for entry in entries):
        _render_mark_filter(w, entries)
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
    links: dict[str, list[str]] = {}
    for sheet in sheets:
        rel = f"{CONTACT_DIR}/{sheet.path.name}"
        links.setdefault(sheet.prompt_id, []).append(rel)
    for grid in grids:
        _render_grid(w, grid, attr_of, links.get(grid.prompt_id, []))
    w(_COMPARE_HTML)
    # Light on purpose: the rows are rendered here; gallery.js only toggles classes
    # in one pass (no layout reads), so a filter click costs one style recalc and
    # layout.
    w(f"</main>\n<script>\n{_asset('gallery.js')}</script>\n</body>\n</html>\n")
    return "".join(out)


def write_page(path: Path, text: str) -> bool:
    """Write `text` to `path` atomically unless the file already holds it; returns
    whether it wrote (an identical page keeps its mtime)."""
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    outputs.write_atomic(path, data)
    return True


def _render_grid(
    w: Any, grid: Grid, attr_of: Mapping[str, str], sheets: Sequence[str]
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
    w(_e(" / ".join(axis_title(a) for a in grid.row_axes)))
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


def _render_cell(w: Any, grid: Grid, entry: Entry, attr_of: Mapping[str, str]) -> None:
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
    # the image the cell shows, as marks name it, and its mark (SPEC 6)
    if entry.image is not None:
        full += f" data-image='{_e(entry.image)}'"
    mark = entry.mark or MARK_NONE
    w(
        f"<td class='cell s-{_e(status)} m-{_e(mark)}'{data}{full}"
        f" data-{MARK_FILTER}='{_e(mark)}' data-label='{_e(label)}'"
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
    # a --simulate result is never mistaken for a real one (SPEC 5)
    simulated = (
        "<span class='badge s-simulated' title='made by --simulate, not the API'>"
        "simulated</span>"
        if row.get("simulated")
        else ""
    )
    shown = entry.marks.get(entry.image or "") or {}
    marked = (
        f"<span class='mark m-{_e(entry.mark)}'>{_e(MARK_LABELS[entry.mark])}</span>"
        if entry.mark in MARK_LABELS
        else ""
    )
    w(
        f"<div class=cap><span class='badge s-{_e(status)}'>{_e(status)}</span>"
        f"{simulated}{marked}<span class=meta>{_e(meta)}</span></div>"
    )
    if shown.get("note"):
        w(f"<p class=mnote>{_e(shown['note'])}</p>")
    extra = list(row.get("outputs") or [])[1:]
    if extra:
        w("<div class=more>")
        for n, rel in enumerate(extra, start=2):
            w(f"<a href='{_href(str(rel))}' target=_blank rel=noopener>image {n}</a>")
        w("</div>")
    if entry.grounding is not None:
        _render_grounding(w, entry.grounding)
    w("</td>")


def _render_mark_filter(w: Any, entries: Sequence[Entry]) -> None:
    """Filter by the mark of the image each cell shows (read-only here; the served
    page's controls change it)."""
    counts = Counter(entry.mark or MARK_NONE for entry in entries)
    w("<fieldset><legend>Mark</legend>")
    for value, label in MARK_LABELS.items():
        w(
            f"<label class='chip m-{value}' title='double-click: only this'>"
            f"<input type=checkbox name={MARK_FILTER} value={value} checked>"
            f"<span>{_e(label)} <small>{counts[value]:,}</small></span></label>"
        )
    w("</fieldset>\n")


def _render_grounding(w: Any, grounding: Grounding) -> None:
    """The sources of a grounded image as links, and Google's search suggestions,
    beside it: Google's terms for grounding ask that the suggestions stay visible
    with the answer, shown exactly as given (ai.google.dev/gemini-api/docs/
    grounding/search-suggestions), so they are not folded away."""
    w("<div class=ground>")
    if grounding.sources:
        w("<ol class=src>")
        for source in grounding.sources:
            w(
                f"<li><a href='{_e(source.uri)}' target=_blank"
                f" rel='noopener noreferrer'>{_e(source.title)}</a></li>"
            )
        w("</ol>")
    if grounding.suggestions is not None:
        w(
            "<iframe class=gs title='Google Search suggestions' loading=lazy"
            f" sandbox='{_SUGGESTIONS_SANDBOX}'"
            f" srcdoc='{_e(_suggestions_doc(grounding.suggestions))}'>"
            "</iframe>"
        )
    elif grounding.queries:
        w(f"<p class=gq>searched: {_e(' · '.join(grounding.queries))}</p>")
    w("</div>")


# Google's search suggestions come as a snippet of HTML and CSS to show as given:
# markup from the network that must not reach into the gallery. A sandboxed iframe
# holding it in `srcdoc` keeps it in a document of its own: without allow-scripts
# no script in it runs, without allow-same-origin it cannot read or change this
# page, and nothing it contains can restyle or break this page's markup (the
# snippet is one escaped attribute value here). Its own Content-Security-Policy
# lets it load nothing (only inline styles and data: images), so opening the
# gallery fetches nothing. A click on a suggestion must take the user straight to
# Google's results page: links open in a new tab (`base target`, allow-popups),
# as an ordinary page (allow-popups-to-escape-sandbox), since Google's pages refuse
# to be shown inside a frame.
_SUGGESTIONS_SANDBOX = "allow-popups allow-popups-to-escape-sandbox"
_SUGGESTIONS_HEAD = (
    "<!doctype html><html><head><meta charset=utf-8>"
    '<meta http-equiv="Content-Security-Policy" content="default-src \'none\';'
    " style-src 'unsafe-inline'; img-src data:\">"
    "<base target=_blank><style>body{margin:0}</style></head><body>"
)
_SUGGESTIONS_TAIL = "</body></html>"


def _suggestions_doc(rendered: str) -> str:
    return _SUGGESTIONS_HEAD + rendered + _SUGGESTIONS_TAIL


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


@functools.cache
def _asset(name: str) -> str:
    """One of ASSETS, read once per process."""
    return resources.files("runner.review").joinpath(name).read_text("utf-8")


_COMPARE_HTML = """
<div id=compare class=overlay hidden role=dialog aria-modal=true aria-labelledby=cmpt>
<div class=ohead><div><h2 id=cmpt></h2><p id=cmpx class=ptext></p></div>
<button type=button id=cmpclose aria-label="Close comparison">Close ✕</button></div>
<div id=cmpgrid class=cmpgrid></div>
</div>
"""
