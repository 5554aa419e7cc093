"""The results review: `index.html`, thumbnails and contact sheets of a real job.

Jobs are produced by the real pipeline (`execution.submit_spec` against the simulated
API, with prompts that script blocked and failed items), then `build_review` is
called the way `runner submit` and `runner review` call it. The gallery is also
opened in headless Chromium (Debian's `chromium`; Playwright's own browser download
needs the network).
"""

from __future__ import annotations

import contextlib
import fnmatch
import http.server
import io
import os
import re
import shutil
import threading
import tomllib
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from PIL import Image

from runner import runs
from runner.client import Endpoint
from runner.plan import build_plan
from runner.review import (
    PLACEHOLDER_RGB,
    SHEET_BACKGROUND,
    SHEET_CELL,
    SHEET_GAP,
    SHEET_MARGIN,
    STATUS_RGB,
    THUMB_SIZE,
    build_review,
    sheets,
    workers,
)
from runner.runs import execution
from runner.spec import load_job
from runner.store import AttemptResult, Store
from tests.e2e import SECRET, write_job
from tests.test_store import make_item

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Locator, Page

    from runner.review import ContactSheet, Review
    from runner.simulate import SimServer, Stats
    from runner.store import JobRow

FAST = {"backoff_base": 0.01, "request_timeout": 2.0, "handle_signals": False}

# 3 prompts: `poster` is a 2 x 2 x 2 grid (city x style x aspect ratio) whose "noir"
# style is blocked by the model and whose Kyoto/flat/1:1 cell is excluded (a hole in
# the grid); `xss` is hostile text; `refused` is rejected with a 400.
GALLERY_JOB = """
    name: gallery
    prompts:
      - id: poster
        text: "A travel poster of {city}, {style}"
      - id: xss
        text: "<script>window.pwned = 1</script> a robot & a <b>cat</b>"
      - id: refused
        text: "an impossible request [sim:400]"
    vars:
      city: [Lisbon, Kyoto]
      style: ["flat vector", "noir [sim:blocked-finish]"]
    aspect_ratios: ["16:9", "1:1"]
    exclude:
      - {prompt: poster, city: Kyoto, style: flat vector, aspect_ratio: "1:1"}
    max_attempts: 2
"""


class Job:
    """A submitted job, its store and its folder, as `build_review` receives them,
    and what the simulated API sent while it ran."""

    def __init__(self, store: Store, row: JobRow, folder: Path, sent: Stats) -> None:
        self.store, self.row, self.folder, self.sent = store, row, folder, sent

    def review(self) -> Review:
        return build_review(self.store, self.row, self.folder)


def submit_job(folder: Path, sim: SimServer, body: str = GALLERY_JOB) -> Job:
    """Run `body` against `sim`, whose statistics the caller has just reset."""
    job_file = write_job(folder, body)
    workspace = runs.Workspace(folder / "out")
    store = workspace.open_store()
    spec = load_job(job_file)

    async def run() -> None:
        await execution.submit_spec(
            spec,
            workspace=workspace,
            store=store,
            endpoint=Endpoint(base_url=sim.url, api_key=SECRET),
            overrides=FAST,
        )

    anyio.run(run)
    row = store.get_job(spec.name)
    assert row is not None
    return Job(store, row, workspace.job_folder(spec.name), sim.stats())


@pytest.fixture(scope="module")
def gallery(
    sim_server: SimServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Job, Review]]:
    """One reviewed job shared by the read-only tests of this module."""
    sim_server.reset()
    job = submit_job(tmp_path_factory.mktemp("gallery"), sim_server)
    try:
        yield job, job.review()
    finally:
        job.store.close()


@pytest.fixture
def fresh(sim: SimServer, tmp_path: Path) -> Iterator[Job]:
    """A job of its own, for tests that change files."""
    job = submit_job(tmp_path, sim)
    try:
        yield job
    finally:
        job.store.close()


class _Cells(HTMLParser):
    """The page's grid cells: attributes of each `td.cell`, with their text and the
    image and link inside."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict[str, Any]] = []
        self.voids = 0
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        classes = (values.get("class") or "").split()
        if tag == "td" and "cell" in classes:
            self.cells.append({**values, "text": "", "img": None, "href": None})
            self._in_cell = True
        elif tag == "td" and "void" in classes:
            self.voids += 1
        elif self._in_cell and tag == "img":
            self.cells[-1]["img"] = values
        elif self._in_cell and tag == "a" and self.cells[-1]["href"] is None:
            self.cells[-1]["href"] = values.get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._in_cell = False

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.cells[-1]["text"] += data


def parse_cells(page: str) -> _Cells:
    parser = _Cells()
    parser.feed(page)
    return parser


def by_status(cells: list[dict[str, Any]], status: str) -> list[dict[str, Any]]:
    return [c for c in cells if f"s-{status}" in c["class"].split()]


# -- the page ----------------------------------------------------------------------


def test_every_item_is_one_cell_and_excluded_cells_are_marked(
    gallery: tuple[Job, Review],
) -> None:
    job, built = gallery
    cells = parse_cells(built.index.read_text("utf-8"))
    manifest = job.store.manifest_rows(job.row)
    assert built.index == job.folder / "index.html"
    assert len(cells.cells) == len(manifest) == 7 + 2 + 2
    assert cells.voids == 1  # poster, Kyoto / flat vector, 1:1 was excluded
    assert len(by_status(cells.cells, "succeeded")) == 5
    assert len(by_status(cells.cells, "blocked")) == 4
    assert len(by_status(cells.cells, "failed")) == 2


def test_thumbnails_are_small_lazy_jpegs_linking_to_the_full_image(
    gallery: tuple[Job, Review],
) -> None:
    job, built = gallery
    cells = parse_cells(built.index.read_text("utf-8")).cells
    succeeded = by_status(cells, "succeeded")
    outputs = {
        out for row in job.store.manifest_rows(job.row) for out in row["outputs"]
    }
    assert built.thumbnails == len(succeeded) == 5
    for cell in succeeded:
        img = cell["img"]
        assert img["loading"] == "lazy"
        assert img["src"].startswith("thumbs/") and img["src"].endswith(".jpg")
        assert cell["href"] in outputs  # relative: the folder can be moved or zipped
        with Image.open(job.folder / img["src"]) as thumb:
            assert thumb.format == "JPEG"
            assert max(thumb.size) <= THUMB_SIZE
            assert (int(img["width"]), int(img["height"])) == thumb.size
    for cell in by_status(cells, "blocked") + by_status(cells, "failed"):
        assert cell["img"] is None


def test_cells_show_status_attempts_tokens_and_why_an_item_failed(
    gallery: tuple[Job, Review],
) -> None:
    _, built = gallery
    cells = parse_cells(built.index.read_text("utf-8")).cells
    for cell in by_status(cells, "blocked"):
        assert "blocked" in cell["text"] and "IMAGE_SAFETY" in cell["text"]
        assert "1 attempt" in cell["text"] and " tok" in cell["text"]
    for cell in by_status(cells, "failed"):
        assert "failed" in cell["text"] and "400" in cell["text"]
    for cell in by_status(cells, "succeeded"):
        assert "1 attempt" in cell["text"] and "tok" in cell["text"]


def test_totals_at_the_top_are_what_was_submitted_and_sent(
    gallery: tuple[Job, Review],
) -> None:
    """Checked against the job file and the simulator's own count of what it sent,
    not against the store's status query the page is built from."""
    job, built = gallery
    page = built.index.read_text("utf-8")
    header = page[: page.index("<main>")]
    assert "<span>11 items · 3 prompts</span>" in header
    # GALLERY_JOB: poster's 3 flat vector cells and xss's 2 succeed, poster's 4 noir
    # cells are blocked, refused's 2 fail; no tile for pending or running
    counts = re.findall(r"<div class='tot s-(\w+)'><b>([\d,]+)</b>", header)
    assert counts == [("succeeded", "5"), ("failed", "2"), ("blocked", "4")]
    # one request per item: a block is final and a 400 is never retried
    assert job.sent["requests"] == 11
    (requests,) = re.findall(r"<b>([\d,]+)</b><span>requests</span>", header)
    assert requests == "11"
    sent = job.sent["usage"]
    assert sent["totalTokenCount"] > 0
    (tokens,) = re.findall(
        r"<b>([\d,]+)</b><span>tokens · ([\d,]+) in · ([\d,]+) out</span>", header
    )
    assert tokens == tuple(
        f"{sent[name]:,}"
        for name in ("totalTokenCount", "promptTokenCount", "candidatesTokenCount")
    )


def test_prompt_text_is_escaped_everywhere(gallery: tuple[Job, Review]) -> None:
    _, built = gallery
    page = built.index.read_text("utf-8")
    assert "<script>window.pwned" not in page
    assert "<b>cat</b>" not in page
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt; a robot &amp; a" in page
    assert page.count("<script>") == 1  # the page's own, inline


def test_the_page_is_self_contained(gallery: tuple[Job, Review]) -> None:
    _, built = gallery
    page = built.index.read_text("utf-8")
    for external in ("http://", "https://", "<link", "<script src", "@import"):
        assert external not in page


def test_the_style_and_script_are_package_data_inlined_into_the_page(
    gallery: tuple[Job, Review],
) -> None:
    _, built = gallery
    page = built.index.read_text("utf-8")
    data = resources.files("runner.review")
    css = data.joinpath("gallery.css").read_text("utf-8")
    js = data.joinpath("gallery.js").read_text("utf-8")
    assert ".cmpgrid{" in css and "function openCompare(" in js
    assert page.count(f"<style>\n{css}</style>") == 1
    assert page.count(f"<script>\n{js}</script>") == 1


def test_every_data_file_of_the_review_package_ships_in_the_wheel() -> None:
    """Without a `[tool.setuptools.package-data]` entry a file is left out of a
    wheel (an editable install would still find it in the source tree)."""
    root = Path(__file__).parent.parent
    pyproject = tomllib.loads((root / "pyproject.toml").read_text("utf-8"))
    shipped = pyproject["tool"]["setuptools"]["package-data"]["runner.review"]
    folder = root / "runner" / "review"
    data = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix != ".py")
    assert {"gallery.css", "gallery.js"} <= set(data)
    for name in data:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in shipped), name


def test_filters_offer_status_and_every_axis_that_varies(
    gallery: tuple[Job, Review],
) -> None:
    _, built = gallery
    page = built.index.read_text("utf-8")
    filters = page[page.index("<form id=filters") : page.index("</form>")]
    legends = [part.split("</legend>")[0] for part in filters.split("<legend>")[1:]]
    assert legends == ["Status", "Prompt", "Aspect ratio", "city", "style"]
    # samples and sizes do not vary in this job, so they get no filter
    assert "Sample" not in legends and "Size" not in legends


def test_a_job_not_run_yet_is_all_pending_placeholders(tmp_path: Path) -> None:
    job_file = write_job(
        tmp_path, "name: later\nprompts: [a fox, an owl]\naspect_ratios: ['1:1', '3:2']"
    )
    spec = load_job(job_file)
    store = Store.for_output(tmp_path / "out")
    try:
        row = store.upsert_job(spec.name, str(job_file), spec.model)
        store.sync_plan(row, build_plan(spec).items)
        built = build_review(store, row, tmp_path / "out" / "later")
    finally:
        store.close()
    cells = parse_cells(built.index.read_text("utf-8")).cells
    assert len(by_status(cells, "pending")) == len(cells) == 4
    assert all("not sent yet" in c["text"] and "0 attempts" in c["text"] for c in cells)
    assert built.thumbnails == 0 and len(built.contact_sheets) == 2
    sheet = built.sheets[0]
    with Image.open(sheet.path) as image:
        x0, y0, _, _ = cell_box(sheet, 0, 0)
        assert image.convert("RGB").getpixel((x0 + 20, y0 + 2)) == STATUS_RGB["pending"]


def test_a_job_without_items_gets_a_page_and_no_sheets(tmp_path: Path) -> None:
    store = Store.for_output(tmp_path / "out")
    try:
        row = store.upsert_job("empty", None, None)
        built = build_review(store, row, tmp_path / "out" / "empty")
    finally:
        store.close()
    assert "This job has no items yet." in built.index.read_text("utf-8")
    assert built.contact_sheets == () and built.thumbnails == 0


# -- building again ----------------------------------------------------------------


def test_building_again_redoes_nothing(fresh: Job) -> None:
    first = fresh.review()
    stamps = {p: p.stat().st_mtime_ns for p in fresh.folder.rglob("*") if p.is_file()}
    second = fresh.review()
    assert first.thumbnails_made == first.thumbnails == 5
    assert second.thumbnails_made == 0 and second.thumbnails == 5
    assert not second.index_written
    assert not any(sheet.written for sheet in second.sheets)
    assert second.contact_sheets == first.contact_sheets
    after = {p: p.stat().st_mtime_ns for p in fresh.folder.rglob("*") if p.is_file()}
    assert after == stamps


def test_a_newer_image_gets_a_new_thumbnail_and_its_prompt_a_new_sheet(
    fresh: Job,
) -> None:
    fresh.review()
    xss = next(
        r for r in fresh.store.manifest_rows(fresh.row) if r["prompt_id"] == "xss"
    )
    image = fresh.folder / xss["outputs"][0]
    later = image.stat().st_mtime_ns + 5_000_000_000
    os.utime(image, ns=(later, later))
    again = fresh.review()
    assert again.thumbnails_made == 1
    assert {s.prompt_id for s in again.sheets if s.written} == {"xss"}


def test_one_worker_or_several_build_the_same_folder(
    fresh: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    def files() -> dict[Path, bytes]:
        return {
            p.relative_to(fresh.folder): p.read_bytes()
            for p in sorted(fresh.folder.rglob("*"))
            if p.is_file() and p.parts[-2] in ("thumbs", "contact")
        }

    monkeypatch.setattr(workers, "WORKERS", 1)
    alone = fresh.review()
    one = files()
    for folder in ("thumbs", "contact"):
        shutil.rmtree(fresh.folder / folder)
    monkeypatch.setattr(workers, "WORKERS", 4)
    together = fresh.review()
    several = files()
    assert together.thumbnails_made == alone.thumbnails_made == 5
    assert several.keys() == one.keys() and len(one) == 5 + 3
    for path in several:  # same pixels (sheet signatures hold thumbnail mtimes)
        with (
            Image.open(io.BytesIO(one[path])) as a,
            Image.open(io.BytesIO(several[path])) as b,
        ):
            assert a.tobytes() == b.tobytes()


def test_review_deletes_nothing_it_did_not_create(fresh: Job) -> None:
    fresh.review()
    mine = [
        fresh.folder / "contact" / "notes.txt",
        fresh.folder / "contact" / "poster_7.png",  # looks like a page, is not ours
        fresh.folder / "thumbs" / "keep.jpg",
    ]
    for path in mine:
        path.write_bytes(b"user file")
    fresh.review()
    assert all(path.read_bytes() == b"user file" for path in mine)


def test_review_writes_only_under_the_job_folder_and_never_the_store(
    fresh: Job,
) -> None:
    root = fresh.folder.parent
    outside = {p for p in root.rglob("*") if fresh.folder not in p.parents}
    before = (
        fresh.store.manifest_rows(fresh.row),
        fresh.store.attempt_rows(fresh.row),
        fresh.store.status(fresh.row),
    )
    fresh.review()
    assert {p for p in root.rglob("*") if fresh.folder not in p.parents} == outside
    after = (
        fresh.store.manifest_rows(fresh.row),
        fresh.store.attempt_rows(fresh.row),
        fresh.store.status(fresh.row),
    )
    assert after == before
    created = {p.relative_to(fresh.folder).parts[0] for p in fresh.folder.rglob("*")}
    assert created == {"images", "manifest.jsonl", "index.html", "thumbs", "contact"}


def test_a_missing_image_file_is_shown_as_such(fresh: Job) -> None:
    xss = next(
        r for r in fresh.store.manifest_rows(fresh.row) if r["prompt_id"] == "xss"
    )
    (fresh.folder / xss["outputs"][0]).unlink()
    built = fresh.review()
    assert built.thumbnails == 4
    cells = parse_cells(built.index.read_text("utf-8")).cells
    assert sum("image file missing" in c["text"] for c in cells) == 1


# -- a grounded image --------------------------------------------------------------
# The job file cannot ask for Google Search grounding yet, so this job's answers
# are recorded through the store as a run records them.

SUGGESTIONS = (
    "<style>.chip{border:solid 1px;border-radius:16px;padding:5px 16px}</style>"
    "<div class=container><a class=chip"
    " href='https://www.google.com/search?q=tram+28+lisbon'>tram 28 lisbon</a></div>"
    # what Google's snippet never holds, and what must not matter if it did
    "<script>parent.pwned = 1</script><img src=x onerror='parent.pwned = 2'>"
    "<img src='https://tracker.example/pixel.gif'>' \" </iframe></td></table>"
)
GROUNDING = {
    "webSearchQueries": ["tram 28 lisbon"],
    "searchEntryPoint": {"renderedContent": SUGGESTIONS},
    "groundingChunks": [
        {"web": {"uri": "https://vertexaisearch.example/r/1", "title": "carris.pt"}},
        {"web": {"uri": "javascript:parent.pwned=3", "title": "evil"}},
        {"image": {"sourceUri": "https://photos.example/tram", "domain": "photos"}},
        {"web": {"uri": "https://vertexaisearch.example/r/1", "title": "again"}},
    ],
}


def grounded_job(
    folder: Path, grounding: dict[str, Any] = GROUNDING
) -> tuple[Store, JobRow, Path]:
    """A job of two items, the first succeeded with a grounded answer, the second
    with a plain one."""
    store = Store.for_output(folder / "out")
    job = store.upsert_job("grounded", None, "m")
    store.sync_plan(job, [make_item("tram 28"), make_item("a bridge", position=1)])
    job_folder = folder / "out" / "grounded"
    run_id = store.start_run(job, "test")
    for n, (work, answer) in enumerate(
        zip(store.pending_items(job), [grounding, None], strict=True)
    ):
        image = f"images/{n}.png"
        (job_folder / "images").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (48, 32), (20 * n, 90, 160)).save(job_folder / image)
        store.finish_attempt(
            store.begin_attempt(work.id, run_id, 1),
            work.id,
            AttemptResult(
                outcome="success", reason="", item_status="succeeded",
                http_status=200, outputs=[image], grounding=answer,
            ),
        )  # fmt: skip
    return store, job, job_folder


@pytest.fixture
def grounded(tmp_path: Path) -> Iterator[Review]:
    store, job, job_folder = grounded_job(tmp_path)
    try:
        yield build_review(store, job, job_folder)
    finally:
        store.close()


@pytest.fixture
def loopback_hits() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on loopback: its URL, and the paths requested from it."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _Page(HTMLParser):
    """Every start tag of a page, with its attributes (entities decoded)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def page_tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Page()
    parser.feed(page)
    return parser.tags


def test_a_grounded_image_shows_its_sources_as_links(grounded: Review) -> None:
    page = grounded.index.read_text("utf-8")
    links = [
        (attrs["href"], attrs.get("target"), attrs.get("rel"))
        for tag, attrs in page_tags(page)
        if tag == "a" and str(attrs.get("href")).startswith("http")
    ]
    # each source once, in order; a javascript: "source" is no link
    assert links == [
        ("https://vertexaisearch.example/r/1", "_blank", "noopener noreferrer"),
        ("https://photos.example/tram", "_blank", "noopener noreferrer"),
    ]
    assert "javascript:" not in page
    assert ">carris.pt</a>" in page and ">photos</a>" in page


def test_search_suggestions_are_shown_as_given_in_a_sandboxed_frame(
    grounded: Review,
) -> None:
    page = grounded.index.read_text("utf-8")
    (frame,) = [attrs for tag, attrs in page_tags(page) if tag == "iframe"]
    # no scripts, no access to the gallery; links open Google in a new tab
    assert frame["sandbox"] == "allow-popups allow-popups-to-escape-sandbox"
    assert "src" not in frame
    doc = str(frame["srcdoc"])
    assert SUGGESTIONS in doc  # exactly as given
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    assert f'<meta http-equiv="Content-Security-Policy" content="{csp}">' in doc
    assert doc.index("Content-Security-Policy") < doc.index(SUGGESTIONS)
    assert "<base target=_blank>" in doc
    # the snippet never reaches the page's own markup
    assert "<script>parent.pwned" not in page
    assert page.count("<script>") == 1
    assert len(parse_cells(page).cells) == 2


def test_a_grounded_gallery_loads_nothing_from_the_network(grounded: Review) -> None:
    page = grounded.index.read_text("utf-8")
    for tag, attrs in page_tags(page):
        for name in ("src", "srcset", "poster", "data"):
            assert not str(attrs.get(name) or "").startswith(("http", "//")), tag
        if tag == "link":
            pytest.fail(f"a <link> on the page: {attrs}")


def test_only_grounded_images_get_sources_and_suggestions(grounded: Review) -> None:
    cells = parse_cells(grounded.index.read_text("utf-8")).cells
    assert [
        "tram 28 lisbon" in c["text"] or "carris.pt" in c["text"] for c in cells
    ] == [
        True,
        False,
    ]


# -- contact sheets ----------------------------------------------------------------


def sheet_of(built: Review, prompt_id: str) -> ContactSheet:
    (sheet,) = [s for s in built.sheets if s.prompt_id == prompt_id]
    return sheet


def cell_box(sheet: ContactSheet, row: int, col: int) -> tuple[int, int, int, int]:
    pitch = sheet.cell + SHEET_GAP
    x, y = sheet.left + col * pitch, sheet.top + row * pitch
    return x, y, x + sheet.cell, y + sheet.cell


def dark_pixels(image: Image.Image, box: tuple[int, int, int, int]) -> int:
    """Pixels in `box` dark enough to be label text."""
    histogram = image.crop(box).convert("L").histogram()
    return sum(histogram[:110])


def ink_width(image: Image.Image, box: tuple[int, int, int, int]) -> int:
    grey = image.crop(box).convert("L").point(lambda v: 255 if v < 110 else 0)
    bbox = grey.getbbox()
    assert bbox is not None, f"no text in {box}"
    return bbox[2] - bbox[0]


def test_one_contact_sheet_per_prompt(gallery: tuple[Job, Review]) -> None:
    job, built = gallery
    contact = job.folder / "contact"
    assert built.contact_sheets == (
        contact / "poster.png",
        contact / "xss.png",
        contact / "refused.png",
    )
    assert all(path.is_file() for path in built.contact_sheets)
    page = built.index.read_text("utf-8")
    for path in built.contact_sheets:  # linked from each prompt's header
        assert f"href='contact/{path.name}'" in page


def test_contact_sheet_is_a_grid_of_axis_values(gallery: tuple[Job, Review]) -> None:
    _, built = gallery
    sheet = sheet_of(built, "poster")
    assert sheet.columns == ("16:9", "1:1")
    assert sheet.rows == (
        "city: Lisbon / style: flat vector",
        "city: Lisbon / style: noir [sim:blocked-finish]",
        "city: Kyoto / style: flat vector",
        "city: Kyoto / style: noir [sim:blocked-finish]",
    )
    pitch = sheet.cell + SHEET_GAP
    with Image.open(sheet.path) as image:
        assert (
            image.size
            == sheet.size
            == (
                sheet.left + 2 * pitch - SHEET_GAP + SHEET_MARGIN,
                sheet.top + 4 * pitch - SHEET_GAP + SHEET_MARGIN,
            )
        )
        image.load()
        rgb = image.convert("RGB")
    # every column header and every row header holds text...
    header = [
        (x0, sheet.top - 40, x1, sheet.top - SHEET_GAP)
        for x0, _, x1, _ in (cell_box(sheet, 0, c) for c in range(2))
    ]
    assert all(dark_pixels(rgb, box) > 20 for box in header)
    for r in range(4):
        _, y0, _, y1 = cell_box(sheet, r, 0)
        assert dark_pixels(rgb, (SHEET_MARGIN, y0, sheet.left - SHEET_GAP, y1)) > 50
    # ...in column order: "16:9" is drawn wider than "1:1"
    assert ink_width(rgb, header[0]) > ink_width(rgb, header[1])
    # and the gutters between cells are background
    x_gutter = sheet.left + sheet.cell + SHEET_GAP // 2
    for y in range(sheet.top, sheet.size[1] - SHEET_MARGIN, 7):
        assert rgb.getpixel((x_gutter, y)) == SHEET_BACKGROUND


def test_contact_sheet_cells_are_images_or_labelled_placeholders(
    gallery: tuple[Job, Review],
) -> None:
    _, built = gallery
    sheet = sheet_of(built, "poster")
    with Image.open(sheet.path) as image:
        rgb = image.convert("RGB")

    def corner(r: int, c: int) -> Any:  # bottom right, clear of any label text
        _, _, x1, y1 = cell_box(sheet, r, c)
        return rgb.getpixel((x1 - 4, y1 - 4))

    def status_bar(r: int, c: int) -> Any:
        x0, y0, _, _ = cell_box(sheet, r, c)
        return rgb.getpixel((x0 + sheet.cell // 2, y0 + 2))

    # rows 1 and 3 (noir) were blocked by the model; (2, 1) was excluded
    for r, c in ((1, 0), (1, 1), (3, 0), (3, 1), (2, 1)):
        assert corner(r, c) == PLACEHOLDER_RGB
    for r, c in ((1, 0), (1, 1), (3, 0), (3, 1)):
        assert status_bar(r, c) == STATUS_RGB["blocked"]
        x0, y0, x1, _ = cell_box(sheet, r, c)
        assert dark_pixels(rgb, (x0, y0 + 8, x1, y0 + 80)) > 50  # "blocked" + reason
    assert status_bar(2, 1) == STATUS_RGB["missing"]
    for r, c in ((0, 0), (0, 1), (2, 0)):
        x0, y0, x1, y1 = cell_box(sheet, r, c)
        centre = rgb.getpixel(((x0 + x1) // 2, (y0 + y1) // 2))
        assert centre not in (PLACEHOLDER_RGB, SHEET_BACKGROUND)


def test_a_grid_too_big_for_one_page_continues_on_numbered_pages(
    fresh: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = 2 * SHEET_MARGIN + 900  # room for about two rows of cells below the titles
    monkeypatch.setattr(sheets, "SHEET_MAX_SIDE", small)
    paged = fresh.review()
    poster = [s for s in paged.sheets if s.prompt_id == "poster"]
    contact = fresh.folder / "contact"
    assert [s.path for s in poster] == [
        contact / "poster.png",
        contact / "poster_2.png",
    ]
    noir = "style: noir [sim:blocked-finish]"
    assert [s.rows for s in poster] == [
        ("city: Lisbon / style: flat vector", f"city: Lisbon / {noir}"),
        ("city: Kyoto / style: flat vector", f"city: Kyoto / {noir}"),
    ]
    for sheet in poster:
        assert sheet.pages == 2 and max(sheet.size) <= small
        with Image.open(sheet.path) as image:
            assert image.size == sheet.size

    monkeypatch.undo()
    whole = fresh.review()
    assert [s.path for s in whole.sheets if s.prompt_id == "poster"] == [
        contact / "poster.png"
    ]
    assert not (contact / "poster_2.png").exists()  # our own surplus page goes


def test_many_columns_shrink_the_cells_to_keep_the_sheet_bounded(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sheets, "SHEET_MAX_SIDE", 1200)
    wide = """
        name: wide
        prompts: ["a lighthouse"]
        aspect_ratios: ["1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "2:3", "3:2"]
    """
    job = submit_job(tmp_path, sim, wide)
    try:
        (sheet,) = job.review().sheets
    finally:
        job.store.close()
    assert len(sheet.columns) == 8
    assert sheet.cell < SHEET_CELL and sheet.size[0] <= 1200


# -- in a real browser -------------------------------------------------------------

CHROMIUM = shutil.which("chromium")
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (apt-get install chromium); "
    "CI installs it, and there this test fails without it",
)


@contextlib.contextmanager
def opened(index: Path | str) -> Iterator[Page]:
    """`index` (a file, or a URL) open in headless Chromium; the page must raise
    no error."""
    assert CHROMIUM, "chromium is missing: .ci/run installs it with apt-get"
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=BROWSER_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(index if isinstance(index, str) else index.as_uri())
            yield page
        finally:
            browser.close()
    assert errors == []


@pytest.fixture
def browser_page(gallery: tuple[Job, Review]) -> Iterator[Page]:
    _, built = gallery
    with opened(built.index) as page:
        yield page


def chip(page: Page, legend: str, value: str) -> Locator:
    """The filter toggle for `value` under the filter group `legend`."""
    group = page.locator("#filters fieldset").filter(
        has=page.locator("legend", has_text=legend)
    )
    return group.locator("label.chip").filter(
        has=page.locator(f"input[value='{value}']")
    )


def shown(page: Page, selector: str) -> int:
    """How many cells matching `selector` a user can see."""
    frames = page.locator(f"{selector} .frame")
    return sum(frames.nth(i).is_visible() for i in range(frames.count()))


@needs_chromium
def test_gallery_in_chromium(
    browser_page: Page, gallery: tuple[Job, Review], tmp_path: Path
) -> None:
    page = browser_page
    _, built = gallery

    # every thumbnail really loads (they are lazy: bring each into view first)
    images = page.locator("td.cell img")
    assert images.count() == built.thumbnails == 5
    for i in range(images.count()):
        images.nth(i).scroll_into_view_if_needed()
    page.wait_for_function(
        "() => [...document.querySelectorAll('td.cell img')].every(i => i.complete)"
    )
    widths = images.evaluate_all("(all) => all.map((i) => i.naturalWidth)")
    assert all(w > 0 for w in widths)

    # failed and blocked cells say why, as visible text
    failed = page.locator("td.cell.s-failed .reason")
    assert failed.count() == 2
    assert all("400" in failed.nth(i).inner_text() for i in range(2))
    assert (
        "IMAGE_SAFETY" in page.locator("td.cell.s-blocked .reason").first.inner_text()
    )

    # hostile prompt text is shown, never run
    assert page.evaluate("() => window.pwned") is None
    assert (
        "<script>window.pwned = 1</script>"
        in page.locator("#p-xss .ptext").inner_text()
    )

    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=tmp_path / "gallery.png", full_page=True)
    shutil.copy(tmp_path / "gallery.png", "/tmp/review-screenshot.png")

    # status filter: blocked cells disappear, the rest stay
    assert shown(page, "td.cell") == 11
    chip(page, "Status", "blocked").click()
    assert shown(page, "td.cell.s-blocked") == 0
    assert shown(page, "td.cell") == 7
    assert page.locator("#shown").inner_text() == "7"
    # rows left empty by the filter go; the noir rows were all blocked
    assert page.locator("#p-poster tbody tr:visible").count() == 2

    # an axis filter: no 16:9 column anywhere, header included
    chip(page, "Aspect ratio", "16:9").click()
    assert page.locator("th.col:visible", has_text="16:9").count() == 0
    axis = chip(page, "Aspect ratio", "16:9").locator("input").get_attribute("name")
    assert shown(page, f"td.cell[data-{axis}='16:9']") == 0
    assert shown(page, "td.cell") == 3
    # a prompt with nothing left is hidden whole
    chip(page, "Status", "failed").click()
    assert not page.locator("#p-refused").is_visible()

    page.locator("#reset").click()
    assert shown(page, "td.cell") == 11

    # double-click keeps only that value
    chip(page, "Prompt", "xss").dblclick()
    assert shown(page, "td.cell") == 2
    page.locator("#reset").click()

    # comparison: every variant of one prompt, side by side, large
    page.locator("button.cmp[data-compare='poster']").click()
    overlay = page.locator("#compare")
    assert overlay.is_visible()
    cards = overlay.locator("figure.card")
    assert cards.count() == 7
    big = overlay.locator("figure.card img")
    assert big.count() == 3
    assert all(
        src.startswith("images/")
        for src in big.evaluate_all("(all) => all.map((i) => i.getAttribute('src'))")
    )
    labels = cards.locator(".lbl").all_inner_texts()
    assert "16:9 · city: Lisbon · style: flat vector" in labels
    page.screenshot(path=tmp_path / "compare.png")
    shutil.copy(tmp_path / "compare.png", "/tmp/review-compare.png")
    page.keyboard.press("Escape")
    assert not overlay.is_visible()


@needs_chromium
def test_grounded_gallery_in_chromium(
    tmp_path: Path, loopback_hits: tuple[str, list[str]]
) -> None:
    """The suggestions show, as wide as the image, inside a frame that runs none of
    its scripts and loads nothing: what the snippet would load points at a server
    on loopback that counts what reaches it (Playwright does not report every
    request of a sandboxed frame)."""
    url, hits = loopback_hits
    loads = (
        f"<img src='{url}/pixel.gif'>"
        f"<style>.container{{background:url({url}/bg.png)}}</style>"
    )
    grounding = {
        **GROUNDING,
        "searchEntryPoint": {"renderedContent": SUGGESTIONS + loads},
    }
    store, job, job_folder = grounded_job(tmp_path, grounding)
    try:
        built = build_review(store, job, job_folder)
    finally:
        store.close()
    with opened(built.index) as page:
        frame = page.locator("iframe.gs")
        frame.scroll_into_view_if_needed()
        chip = page.frame_locator("iframe.gs").locator("a.chip")
        assert chip.inner_text() == "tram 28 lisbon"
        assert chip.is_visible()
        image = page.locator("td.cell").first.locator(".frame")
        frame_box, image_box = frame.bounding_box(), image.bounding_box()
        assert frame_box is not None and image_box is not None
        assert frame_box["width"] >= image_box["width"]
        assert page.locator(".ground .src a").all_inner_texts() == [
            "carris.pt",
            "photos",
        ]
        page.wait_for_load_state("networkidle")
        assert page.evaluate("() => window.pwned") is None
        page.screenshot(path=tmp_path / "grounded.png", full_page=True)
        shutil.copy(tmp_path / "grounded.png", "/tmp/review-grounded.png")
        # the compare view shows them too
        page.locator("button.cmp").first.click()
        assert page.locator("#compare .card .ground iframe.gs").count() == 1
    assert hits == []
