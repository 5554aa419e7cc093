"""The gallery page: `index.html`, the shell that shows a job's `gallery-data.js`.

Owns the page's markup: job totals, the reference-set legend, the filter bar's
frame, the list the items are drawn into and the comparison overlay. The items
themselves are data (`data.py`), drawn by `gallery.js` a screenful at a time, so
the page stays small and opens fast however many items the job has. Its style and
behaviour are the package data files `gallery.css` and `gallery.js`, inlined into
every page; the data is loaded with `<script src>`, so the page needs no server and
makes no request beyond its own folder (it works from file://). Must not read
images, draw, or write anything but `index.html` and `gallery-data.js`.
"""

from __future__ import annotations

import functools
import hashlib
import html
from importlib import resources
from typing import TYPE_CHECKING
from urllib.parse import quote

from runner import outputs
from runner.review.data import DATA_FILE
from runner.store import STATUSES

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from runner.review.legend import ReferenceSet
    from runner.store import JobRow, Status

INDEX = "index.html"


def render_page(
    job: JobRow,
    status: Status,
    prompts: int,
    legend: Sequence[ReferenceSet],
    data: str,
) -> str:
    """index.html for a job whose `gallery-data.js` holds `data`."""
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
    w(f"<span>{total:,} items · {prompts:,} prompts</span>")
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
    w("</div>\n")
    if legend:
        _render_legend(w, legend)
    w("</header>\n")
    w(
        "<form id=filters class=filters autocomplete=off onsubmit='return false'>\n"
        "<div id=fsets class=fsets></div>"
        f"<div class=fstat><span>showing <b id=shown>{total:,}</b> of {total:,}</span>"
        "<button type=button id=reset>reset</button>"
        "<button type=button id=fold aria-expanded=true>hide filters</button>"
        "</div>\n</form>\n<main>\n"
    )
    if not total:
        w("<p class=empty>This job has no items yet.</p>\n")
    w(
        "<p id=nomatch class=empty hidden>No item matches these filters.</p>\n"
        "<p id=nodata class=empty hidden>The gallery's data did not load: "
        f"{DATA_FILE} belongs next to {INDEX}; rebuild them with "
        f"<code>runner review {_e(job.name)}</code>.</p>\n"
        "<noscript><p class=empty>The gallery needs JavaScript to show its items."
        "</p></noscript>\n"
        "<nav class=pager hidden aria-label=pages></nav>\n"
        "<div id=list class=list></div>\n"
        "<nav class=pager hidden aria-label=pages></nav>\n"
    )
    w(_COMPARE_HTML)
    # The data file's hash in its URL: a browser never pairs this page with an
    # older copy of the data from its cache.
    version = hashlib.sha256(data.encode("utf-8")).hexdigest()[:16]
    w(
        f"</main>\n<script src='{DATA_FILE}?v={version}'></script>\n"
        f"<script>\n{_asset('gallery.js')}</script>\n</body>\n</html>\n"
    )
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


def _render_legend(w: Callable[[str], object], legend: Sequence[ReferenceSet]) -> None:
    """Each reference set's files, as written in the job, with their thumbnails."""
    w(
        "<section id=legend class=legend aria-labelledby=legendt>"
        "<h2 id=legendt>Reference sets</h2><div class=rsets>\n"
    )
    for ref_set in legend:
        count = len(ref_set.files)
        w(
            f"<div class=rset id='ref-{_e(ref_set.label)}'><h3>{_e(ref_set.label)}"
            f" <small>{count} file{'s' if count != 1 else ''}</small></h3><ul>"
        )
        for ref in ref_set.files:
            w(f"<li title='{_e(ref.path)}'>")
            if ref.thumb is not None:
                w(f"<img src='{_href(ref.thumb)}' alt='{_e(ref.path)}'>")
            else:
                w(f"<span class=rmiss>{_e(ref.note or 'no thumbnail')}</span>")
            w(f"<span class=rname>{_e(ref.path)}</span></li>")
        w("</ul></div>\n")
    w("</div></section>\n")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


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
