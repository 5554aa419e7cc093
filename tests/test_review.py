"""The results review: `index.html`, its data, thumbnails and contact sheets of a
real job.

Jobs are produced by the real pipeline (`execution.submit_spec` against the simulated
API, with prompts that script blocked and failed items), then `build_review` is
called the way `runner submit` and `runner review` call it. What each item shows is
read back from `gallery-data.js` (`gallery_items`), and the gallery is opened in
headless Chromium (Debian's `chromium`; Playwright's own browser download needs the
network) to check what a user sees.
"""

from __future__ import annotations

import contextlib
import fnmatch
import http.server
import io
import json
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

from benchmarks import review_bench
from runner import runs
from runner.client import Endpoint
from runner.plan import build_plan
from runner.review import (
    DATA_FILE,
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
from runner.review.data import DATA_GLOBAL, thumb_path
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


def gallery_data(folder: Path) -> dict[str, Any]:
    """The object a job folder's gallery-data.js gives the page."""
    text = (folder / DATA_FILE).read_text("utf-8")
    prefix, suffix = f"window.{DATA_GLOBAL} = ", ";\n"
    assert text.startswith(prefix) and text.endswith(suffix)
    data: dict[str, Any] = json.loads(text[len(prefix) : -len(suffix)])
    prompt_axis = data["axes"][1]
    assert prompt_axis["key"] == "prompt"
    if prompt_axis["values"] is None:  # written so when they are the prompts' ids
        prompt_axis["values"] = data["prompts"]["id"]
    return data


def gallery_items(folder: Path) -> list[dict[str, Any]]:
    """Each item of the gallery's data as one dict, as the page reads it: every
    axis value by its key (None where the item has no such axis), the prompt text,
    key, attempts, tokens (None: nothing billed), reason, image, thumbnail,
    simulated, extra images and grounding."""
    data = gallery_data(folder)
    items = data["items"]
    found = []
    for i in range(items["n"]):
        item: dict[str, Any] = {}
        for a, axis in enumerate(data["axes"]):
            column = items["axis"][a]
            v = 0 if column is None else column[i]
            item[axis["key"]] = None if v < 0 else axis["values"][v]
        thumb, name = items["thumb"][i], items["image"][i]
        image = items["image_dir"] + name if name else ""
        item.update(
            key=items["key"][i],
            text=items["texts"][items["text"][i]],
            attempts=items["attempts"][i],
            tokens=None if items["tokens"][i] < 0 else items["tokens"][i],
            reason=items["reasons"][items["reason"][i]],
            image=image or None,
            thumb={0: None, 1: thumb_path(image)}.get(thumb, thumb),
            simulated=bool(items["simulated"] and items["simulated"][i]),
            extra=data["extra"].get(str(i), []),
            grounding=data["grounding"].get(str(i)),
        )
        found.append(item)
    return found


def by_status(items: list[dict[str, Any]], status: str) -> list[dict[str, Any]]:
    return [item for item in items if item["status"] == status]


# -- the page ----------------------------------------------------------------------


def test_every_item_is_in_the_data_once_and_excluded_cells_are_marked(
    gallery: tuple[Job, Review],
) -> None:
    job, built = gallery
    items = gallery_items(job.folder)
    manifest = job.store.manifest_rows(job.row)
    assert built.index == job.folder / "index.html"
    assert built.data == job.folder / "gallery-data.js"
    assert [i["key"] for i in items] == [r["key"][:12] for r in manifest]
    assert len(items) == 7 + 2 + 2
    assert len(by_status(items, "succeeded")) == 5
    assert len(by_status(items, "blocked")) == 4
    assert len(by_status(items, "failed")) == 2
    # every item in exactly one cell of its prompt's grid; poster, Kyoto / flat
    # vector, 1:1 was excluded: a hole in the grid
    data = gallery_data(job.folder)
    prompts = data["prompts"]
    assert prompts["id"] == ["poster", "xss", "refused"]
    cells = [
        i + first if i >= 0 else i
        for first, grid in zip(prompts["first"], prompts["cells"], strict=True)
        for i in grid
    ]
    assert sorted(i for i in cells if i >= 0) == list(range(len(items)))
    assert cells.count(-1) == 1
    poster = data["shapes"][prompts["shape"][0]]
    assert len(poster["columns"]) == 2 and len(prompts["cells"][0]) == 8


def test_thumbnails_are_small_jpegs_and_images_are_relative_paths(
    gallery: tuple[Job, Review],
) -> None:
    job, built = gallery
    items = gallery_items(job.folder)
    succeeded = by_status(items, "succeeded")
    outputs = {
        out for row in job.store.manifest_rows(job.row) for out in row["outputs"]
    }
    assert built.thumbnails == len(succeeded) == 5
    for item in succeeded:
        assert item["thumb"].startswith("thumbs/") and item["thumb"].endswith(".jpg")
        assert item["image"] in outputs  # relative: the folder can be moved or zipped
        with Image.open(job.folder / item["thumb"]) as thumb:
            assert thumb.format == "JPEG"
            assert max(thumb.size) <= THUMB_SIZE
    for item in by_status(items, "blocked") + by_status(items, "failed"):
        assert item["thumb"] is None and item["image"] is None


def test_items_carry_status_attempts_tokens_and_why_an_item_failed(
    gallery: tuple[Job, Review],
) -> None:
    job, _ = gallery
    items = gallery_items(job.folder)
    for item in by_status(items, "blocked"):
        assert "IMAGE_SAFETY" in item["reason"]
        assert item["attempts"] == 1 and item["tokens"] is not None
    for item in by_status(items, "failed"):
        assert "400" in item["reason"]
    for item in by_status(items, "succeeded"):
        assert item["attempts"] == 1 and item["tokens"] > 0 and item["reason"] == ""


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


def test_prompt_text_is_data_never_markup(gallery: tuple[Job, Review]) -> None:
    """Prompts are user text: the page holds none of it as markup (the browser test
    checks it is shown as text and never run)."""
    job, built = gallery
    page = built.index.read_text("utf-8")
    assert "pwned" not in page and "<b>cat</b>" not in page
    assert page.count("<script>") == 1  # the page's own, inline
    hostile = "<script>window.pwned = 1</script> a robot & a <b>cat</b>"
    assert hostile in gallery_data(job.folder)["items"]["texts"]


def test_the_page_loads_only_its_own_data_file(gallery: tuple[Job, Review]) -> None:
    _, built = gallery
    page = built.index.read_text("utf-8")
    for external in ("http://", "https://", "<link", "@import"):
        assert external not in page
    # a <script src>, not fetch: a page opened from file:// may not fetch a file
    (src,) = re.findall(r"<script src='([^']*)'>", page)
    assert re.fullmatch(r"gallery-data\.js\?v=[0-9a-f]{16}", src)
    assert "fetch(" not in page and "XMLHttpRequest" not in page


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
    job, _ = gallery
    axes = gallery_data(job.folder)["axes"]
    filtered = [
        a["title"] for a in axes if a["key"] == "status" or len(a["values"]) > 1
    ]
    assert filtered == ["Status", "Prompt", "Aspect ratio", "city", "style"]
    # samples and sizes do not vary in this job, so they get no filter
    by_key = {a["key"]: a for a in axes}
    assert by_key["sample"]["values"] == ["1"]
    assert by_key["status"]["counts"] == [5, 2, 4]  # succeeded, failed, blocked


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
    items = gallery_items(tmp_path / "out" / "later")
    assert len(by_status(items, "pending")) == len(items) == 4
    assert all(i["reason"] == "not sent yet" and i["attempts"] == 0 for i in items)
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
    assert created == {
        "images",
        "manifest.jsonl",
        "index.html",
        "gallery-data.js",
        "thumbs",
        "contact",
    }


def test_a_missing_image_file_is_shown_as_such(fresh: Job) -> None:
    xss = next(
        r for r in fresh.store.manifest_rows(fresh.row) if r["prompt_id"] == "xss"
    )
    (fresh.folder / xss["outputs"][0]).unlink()
    built = fresh.review()
    assert built.thumbnails == 4
    items = gallery_items(fresh.folder)
    assert [i["reason"] for i in items].count("image file missing") == 1


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


def test_a_grounded_image_keeps_its_web_sources_in_order(grounded: Review) -> None:
    items = gallery_items(grounded.index.parent)
    # each source once, in order; a javascript: "source" is dropped
    assert items[0]["grounding"]["sources"] == [
        ["carris.pt", "https://vertexaisearch.example/r/1"],
        ["photos", "https://photos.example/tram"],
    ]
    assert "javascript:" not in grounded.data.read_text("utf-8")


def test_search_suggestions_are_kept_as_given_in_a_document_that_loads_nothing(
    grounded: Review,
) -> None:
    """The document the page puts in the sandboxed frame's srcdoc (the sandbox
    itself is checked in Chromium)."""
    doc = gallery_items(grounded.index.parent)[0]["grounding"]["suggestions"]
    assert SUGGESTIONS in doc  # exactly as given
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    assert f'<meta http-equiv="Content-Security-Policy" content="{csp}">' in doc
    assert doc.index("Content-Security-Policy") < doc.index(SUGGESTIONS)
    assert "<base target=_blank>" in doc
    # the snippet never reaches the page's own markup
    page = grounded.index.read_text("utf-8")
    assert "pwned" not in page and page.count("<script>") == 1


def test_a_grounded_gallery_page_loads_nothing_from_the_network(
    grounded: Review,
) -> None:
    page = grounded.index.read_text("utf-8")
    for tag, attrs in page_tags(page):
        for name in ("src", "srcset", "poster", "data"):
            assert not str(attrs.get(name) or "").startswith(("http", "//")), tag
        if tag == "link":
            pytest.fail(f"a <link> on the page: {attrs}")


def test_only_grounded_images_get_sources_and_suggestions(grounded: Review) -> None:
    items = gallery_items(grounded.index.parent)
    assert [item["grounding"] is not None for item in items] == [True, False]


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
    # linked from each prompt's header
    prompts = gallery_data(job.folder)["prompts"]
    linked = dict(zip(prompts["id"], prompts["sheets"], strict=True))
    assert linked == {
        path.stem: [f"contact/{path.name}"] for path in built.contact_sheets
    }


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
def opened(index: Path | str, height: int = 1000) -> Iterator[Page]:
    """`index` (a file, or a URL) open in headless Chromium, its first rows drawn;
    the page must raise no error."""
    assert CHROMIUM, "chromium is missing: .ci/run installs it with apt-get"
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=BROWSER_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": height})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(index if isinstance(index, str) else index.as_uri())
            page.wait_for_function(DRAWN)
            yield page
        finally:
            browser.close()
    assert errors == []


# the page has drawn its first rows (or has none to draw)
DRAWN = """() => !window.RUNNER_GALLERY || !window.RUNNER_GALLERY.items.n
  || performance.getEntriesByName("gallery:painted").length"""


@pytest.fixture
def browser_page(gallery: tuple[Job, Review]) -> Iterator[Page]:
    _, built = gallery
    # tall enough for the whole small gallery: the page draws what is in view
    with opened(built.index, height=3000) as page:
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


def prompt_head(page: Page, prompt_id: str) -> Locator:
    return page.locator(f".blk.head[data-prompt='{prompt_id}']")


@needs_chromium
def test_gallery_in_chromium(
    browser_page: Page, gallery: tuple[Job, Review], tmp_path: Path
) -> None:
    page = browser_page
    _, built = gallery

    # every thumbnail really loads (they are lazy: bring each into view first)
    images = page.locator("#list .cell img")
    assert images.count() == built.thumbnails == 5
    for i in range(images.count()):
        images.nth(i).scroll_into_view_if_needed()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#list .cell img')].every(i => i.complete)"
    )
    loaded = images.evaluate_all(
        "(all) => all.map((i) => [i.naturalWidth, i.loading, i.getAttribute('src')])"
    )
    for width, loading, src in loaded:
        assert width > 0 and loading == "lazy" and src.startswith("thumbs/")
    links = page.locator("#list .cell a.frame").evaluate_all(
        "(all) => all.map((a) => a.getAttribute('href'))"
    )
    assert all(href.startswith("images/") for href in links)

    # failed and blocked cells say why, as visible text
    failed = page.locator(".cell.s-failed .reason")
    assert failed.count() == 2
    assert all("400" in failed.nth(i).inner_text() for i in range(2))
    assert "IMAGE_SAFETY" in page.locator(".cell.s-blocked .reason").first.inner_text()
    assert "1 attempt" in page.locator(".cell.s-blocked .meta").first.inner_text()

    # hostile prompt text is shown, never run
    assert page.evaluate("() => window.pwned") is None
    assert (
        "<script>window.pwned = 1</script>"
        in prompt_head(page, "xss").locator(".ptext").inner_text()
    )

    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=tmp_path / "gallery.png", full_page=True)
    shutil.copy(tmp_path / "gallery.png", "/tmp/review-screenshot.png")

    legends = page.locator("#filters legend").all_inner_texts()
    assert [t.lower() for t in legends] == [
        "status",
        "prompt",
        "aspect ratio",
        "city",
        "style",
    ]

    # status filter: blocked cells disappear, the rest stay
    assert shown(page, ".cell") == 11
    chip(page, "Status", "blocked").click()
    assert shown(page, ".cell.s-blocked") == 0
    assert shown(page, ".cell") == 7
    assert page.locator("#shown").inner_text() == "7"
    # rows left empty by the filter go; the noir rows were all blocked
    assert page.locator(".blk.row[data-prompt='poster']").count() == 2

    # an axis filter: no 16:9 column anywhere, header included
    chip(page, "Aspect ratio", "16:9").click()
    assert page.locator(".heads .col", has_text="16:9").count() == 0
    assert page.locator(".heads .col", has_text="1:1").count() >= 1
    assert shown(page, ".cell") == 3
    # a prompt with nothing left is hidden whole
    chip(page, "Status", "failed").click()
    assert prompt_head(page, "refused").count() == 0

    page.locator("#reset").click()
    assert shown(page, ".cell") == 11

    # double-click keeps only that value
    chip(page, "Prompt", "xss").dblclick()
    assert shown(page, ".cell") == 2
    page.locator("#reset").click()

    # comparison: every variant of one prompt, side by side, large
    prompt_head(page, "poster").locator("button.cmp").click()
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
def test_the_stores_marks_are_in_the_data_and_shown_read_only(fresh: Job) -> None:
    """Marks belong to images (SPEC 6): the data carries those the store holds, and
    the static page shows them with a filter by mark, and changes none."""
    fresh.review()
    assert gallery_data(fresh.folder)["marks"] == {}
    items = gallery_items(fresh.folder)
    starred, rejected = [i["image"] for i in by_status(items, "succeeded")][:2]
    ids = {
        image: f.item_id
        for f in fresh.store.images_of(fresh.row)
        for image in f.outputs
    }
    fresh.store.set_marks(
        fresh.row, [(ids[starred], starred)], "star", "<b>keep</b> it"
    )
    fresh.store.set_marks(fresh.row, [(ids[rejected], rejected)], "reject", None)
    built = fresh.review()
    assert gallery_data(fresh.folder)["marks"] == {
        starred: {"mark": "star", "note": "<b>keep</b> it"},
        rejected: {"mark": "reject", "note": None},
    }
    with opened(built.index, height=3000) as page:
        marks = page.locator("#list .cell .mark").all_inner_texts()
        assert sorted(marks) == ["★ star", "✕ reject"]
        assert page.locator(f"#list .cell.m-star[data-image='{starred}']").count() == 1
        note = page.locator("#list .cell .mnote")
        assert note.inner_text() == "<b>keep</b> it"  # text, never markup
        assert page.locator("#list .cell .mnote b").count() == 0
        # read-only: nothing on the static page changes a mark
        assert page.locator("#list .cell button, #list .cell input").count() == 0
        only = chip(page, "Mark", "star")
        assert only.inner_text() == "★ starred 1"
        only.dblclick()
        assert page.locator("#list .cell:not(.off)").count() == 1


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
        image = page.locator("#list .cell").first.locator(".frame")
        frame_box, image_box = frame.bounding_box(), image.bounding_box()
        assert frame_box is not None and image_box is not None
        assert frame_box["width"] >= image_box["width"]
        assert page.locator(".ground .src a").all_inner_texts() == [
            "carris.pt",
            "photos",
        ]
        # the frame is sandboxed before its srcdoc is set, and has no src
        attributes = frame.evaluate(
            "(f) => [f.getAttribute('sandbox'), f.hasAttribute('src'), f.srcdoc]"
        )
        assert attributes[0] == "allow-popups allow-popups-to-escape-sandbox"
        assert attributes[1] is False and SUGGESTIONS in attributes[2]
        sources = page.locator(".ground .src a").evaluate_all(
            "(all) => all.map((a) => [a.getAttribute('href'), a.target, a.rel])"
        )
        assert sources == [
            ["https://vertexaisearch.example/r/1", "_blank", "noopener noreferrer"],
            ["https://photos.example/tram", "_blank", "noopener noreferrer"],
        ]
        page.wait_for_load_state("networkidle")
        assert page.evaluate("() => window.pwned") is None
        page.screenshot(path=tmp_path / "grounded.png", full_page=True)
        shutil.copy(tmp_path / "grounded.png", "/tmp/review-grounded.png")
        # the compare view shows them too
        page.locator("button.cmp").first.click()
        assert page.locator("#compare .card .ground iframe.gs").count() == 1
    assert hits == []


def test_the_review_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """`benchmarks/review_bench.py` at a tiny size, so it cannot rot; its figures
    are printed, never asserted."""
    assert review_bench.main(["--items", "100", "--image-scale", "0.02"]) == 0
    printed = capsys.readouterr().out
    for line in ("job: 100 items", "build cold:", "build warm:", "files: index.html"):
        assert line in printed
    if CHROMIUM:
        assert "browser: 100 items" in printed and "page errors" not in printed
