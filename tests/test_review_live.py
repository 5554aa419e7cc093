"""The gallery during and right after a run (`review.live`): a thumbnail is made
when its image lands, contact sheets are one per prompt with two cells or more and
shared pages for the prompts with one (SPEC 4), a killed run leaves no half file,
and a job of any size gets its gallery. Real parts: the simulated API over HTTP,
a SQLite store, the CLI in a child process for the kill. Nothing here is timed
(the review scenario of `benchmarks/bench.py` measures)."""

from __future__ import annotations

import io
import os
import signal
import time
from typing import TYPE_CHECKING

import pytest
from PIL import Image, PngImagePlugin

from runner import outputs, runs
from runner.plan import build_plan
from runner.review import build_review, live, sheets
from runner.review.live import LiveReview
from runner.simulate import SimServer
from runner.spec import load_job
from runner.store import AttemptEnd, AttemptResult, AttemptStart
from tests.e2e import SECRET, manifest, spawn, write_job
from tests.test_review import gallery_data

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from runner.reports import RunReport
    from runner.review import Review
    from runner.store import JobRow, Store, WorkItem

# `multi` has four cells (one per style); `one` and `two` one each (`two` refused).
MIXED_JOB = """
    name: mixed
    vars:
      style: [flat, noir, watercolour, clay]
    prompts:
      - id: multi
        text: "a lighthouse, {style}"
      - id: one
        text: "a single boat"
      - id: two
        text: "a quay at night [sim:400]"
"""


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKAIFY_API_KEY", SECRET)


def submit(
    sim: SimServer, folder: Path, body: str, *, review: bool = True, **send: object
) -> RunReport:
    """`runs.submit` as `runner submit` calls it, on the simulated API."""
    return runs.submit(
        write_job(folder, body),
        workspace=runs.Workspace(folder / "out"),
        send=runs.SendOptions(base_url=sim.url, review=review, **send),  # type: ignore[arg-type]
        yes=True,
    )


def thumb_of(folder: Path, image: str) -> Path:
    return folder / "thumbs" / f"{image.rpartition('/')[2].rpartition('.')[0]}.jpg"


def whole_jpeg(path: Path) -> bool:
    """Whether `path` is a JPEG that decodes to its end."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.format == "JPEG"
    except OSError:
        return False


def sheet_names(folder: Path) -> set[str]:
    return {p.name for p in (folder / "contact").iterdir()}


# -- right after a run -------------------------------------------------------------


def test_every_image_has_its_thumbnail_when_submit_returns(
    sim: SimServer, tmp_path: Path
) -> None:
    report = submit(sim, tmp_path, MIXED_JOB)

    folder = tmp_path / "out" / "mixed"
    rows = manifest(tmp_path / "out", "mixed")
    succeeded = [r for r in rows if r["status"] == "succeeded"]
    assert len(succeeded) == 5 and report.exit_code == 1  # `two` was refused
    for row in succeeded:
        assert whole_jpeg(thumb_of(folder, row["outputs"][0])), row["outputs"]
    assert gallery_data(folder)["items"]["thumb"] == [
        1 if r["status"] == "succeeded" else 0 for r in rows
    ]
    step = report.gallery
    assert step is not None and step.index == folder / "index.html"
    assert step.thumbnails_during_run + step.thumbnails_at_end == 5


def test_the_gallery_after_a_run_is_what_a_full_review_builds(
    sim: SimServer, tmp_path: Path
) -> None:
    """The page written from the run's own model equals the one `runner review`
    writes from the store: a review right after finds nothing to do."""
    submit(sim, tmp_path, MIXED_JOB)

    again = full_review(tmp_path, "mixed")
    assert again.thumbnails_made == 0
    assert not again.index_written
    assert [s.path.name for s in again.sheets if s.written] == []


def test_a_longer_run_leaves_nothing_for_a_full_review_to_redo(
    sim: SimServer, tmp_path: Path
) -> None:
    """Sheets drawn while the run went on, refreshed rows and late thumbnails all
    agree with what the store says at the end."""
    prompts = "\n".join(f"  - 'harbour {i}'" for i in range(8))
    refused = "\n".join(f"  - 'refused {i} [sim:400]'" for i in range(3))
    body = f"name: longer\nsamples: 30\nprompts:\n{prompts}\n{refused}\n"
    submit(sim, tmp_path, body, concurrency=8)

    again = full_review(tmp_path, "longer")
    assert again.thumbnails == 240 and again.thumbnails_made == 0
    assert not again.index_written
    assert [s.path.name for s in again.sheets if s.written] == []


def test_no_review_makes_no_thumbnails_and_no_page(
    sim: SimServer, tmp_path: Path
) -> None:
    report = submit(sim, tmp_path, MIXED_JOB, review=False)

    folder = tmp_path / "out" / "mixed"
    assert report.gallery is None
    assert not (folder / "thumbs").exists()
    assert not (folder / "index.html").exists()


def test_retry_brings_the_gallery_up_to_date_too(
    sim: SimServer, tmp_path: Path
) -> None:
    submit(sim, tmp_path, MIXED_JOB)
    folder = tmp_path / "out" / "mixed"
    before = gallery_data(folder)["items"]["attempts"]

    report = runs.retry(
        "mixed",
        workspace=runs.Workspace(tmp_path / "out"),
        send=runs.SendOptions(base_url=sim.url),
    )
    assert report.gallery is not None and report.gallery.error is None
    refused = len(before) - 1  # `two`, last in plan order, is sent again
    after = gallery_data(folder)["items"]["attempts"]
    assert after == [*before[:refused], before[refused] + 1]


# -- contact sheets (SPEC 4) --------------------------------------------------------


def test_a_prompt_with_two_cells_or_more_gets_its_own_sheet_the_rest_share_pages(
    sim: SimServer, tmp_path: Path
) -> None:
    singles = "\n".join(
        f"      - {{id: s{i:03d}, text: 'boat {i}'}}" for i in range(101)
    )
    body = MIXED_JOB + singles + "\n"
    submit(sim, tmp_path, body)

    folder = tmp_path / "out" / "mixed"
    assert sheet_names(folder) == {
        "multi.png",
        "+singles-001.png",
        "+singles-002.png",
    }
    data = gallery_data(folder)["prompts"]
    links = dict(zip(data["id"], data["sheets"], strict=True))
    assert links["multi"] == ["contact/multi.png"]
    # plan order, a hundred to a page: one, two, s000..s097, then s098..s100
    assert links["one"] == links["s097"] == ["contact/+singles-001.png"]
    assert links["s098"] == links["s100"] == ["contact/+singles-002.png"]
    with Image.open(folder / "contact" / "+singles-002.png") as page:
        assert page.format == "PNG"
        assert page.width < page.height * 3  # three cells of ten across

    # Fewer single-cell prompts: the second shared page goes; `one` gets more
    # cells (one per style) and so a sheet of its own.
    fewer = MIXED_JOB.replace('"a single boat"', '"a single boat, {style}"')
    fewer += "\n".join(singles.splitlines()[:50]) + "\n"
    submit(sim, tmp_path, fewer)
    assert sheet_names(folder) == {"multi.png", "one.png", "+singles-001.png"}


def test_sheets_a_prompt_had_before_it_was_grouped_go_and_nothing_else(
    sim: SimServer, tmp_path: Path
) -> None:
    """An earlier runner drew `contact/<prompt>.png` for one cell too; those are
    removed (only files this package wrote, by the prompt named inside them)."""
    folder = tmp_path / "out" / "mixed" / "contact"
    folder.mkdir(parents=True)
    ours = PngImagePlugin.PngInfo()
    ours.add_text("runner-review-prompt", "one")
    Image.new("RGB", (8, 8)).save(folder / "one.png", pnginfo=ours)
    Image.new("RGB", (8, 8)).save(folder / "two.png")  # a user's file of that name
    submit(sim, tmp_path, MIXED_JOB)

    assert sheet_names(tmp_path / "out" / "mixed") == {
        "multi.png",
        "two.png",
        "+singles-001.png",
    }


def test_a_shared_page_shows_each_prompt_captioned_below_its_cell(
    sim: SimServer, tmp_path: Path
) -> None:
    submit(sim, tmp_path, MIXED_JOB)

    built = full_review(tmp_path, "mixed")
    (page,) = [s for s in built.sheets if s.prompts == ("one", "two")]
    assert page.prompt_id == "" and page.path.name == "+singles-001.png"
    with Image.open(page.path) as image:
        rgb = image.convert("RGB")
    cell = sheets.SINGLES_CELL
    # `one`'s thumbnail fills its cell; `two` (refused) is a placeholder
    x, y = page.left + cell // 2, page.top + cell // 2
    assert rgb.getpixel((x, y)) != sheets.PLACEHOLDER_RGB
    x2 = page.left + cell + sheets.SHEET_GAP + cell // 2
    assert rgb.getpixel((x2, y)) == sheets.PLACEHOLDER_RGB


def full_review(tmp_path: Path, name: str) -> Review:
    """What `runner review NAME` builds now."""
    workspace = runs.Workspace(tmp_path / "out")
    store = workspace.open_store()
    try:
        job = store.get_job(name)
        assert job is not None
        return build_review(store, job, workspace.job_folder(name))
    finally:
        store.close()


# -- during the run ------------------------------------------------------------------


@pytest.fixture
def planned(tmp_path: Path) -> Iterator[tuple[Store, JobRow, Path, list[WorkItem]]]:
    """MIXED_JOB planned and stored, nothing sent: the store, the job, its folder
    and its pending items."""
    spec = load_job(write_job(tmp_path, MIXED_JOB))
    workspace = runs.Workspace(tmp_path / "out")
    store = workspace.open_store()
    job = store.upsert_job(spec.name, str(spec.path), spec.model)
    store.sync_plan(job, build_plan(spec).items)
    try:
        yield store, job, workspace.job_folder(spec.name), store.pending_items(job)
    finally:
        store.close()


def land(store: Store, folder: Path, item: WorkItem) -> AttemptEnd:
    """What a run does with an answer: its image into images/, its attempt into
    the store."""
    name = outputs.item_image_name(item, 0, "png")
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), (200, 90, 40)).save(buffer, "PNG")
    outputs.write_atomic(folder / outputs.IMAGES_DIR / name, buffer.getvalue())
    run_id = store.start_run(store.get_job("mixed"), "submit")  # type: ignore[arg-type]
    (attempt,) = store.record_attempts([AttemptStart(item.id, run_id, 1)])
    assert attempt is not None
    end = AttemptEnd(
        attempt,
        item.id,
        AttemptResult(
            outcome="success",
            reason="ok",
            item_status="succeeded",
            http_status=200,
            outputs=[f"{outputs.IMAGES_DIR}/{name}"],
        ),
    )
    store.record_attempts([end])
    return end


def eventually(check: object, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_a_thumbnail_is_made_when_its_image_lands_not_at_the_end(
    planned: tuple[Store, JobRow, Path, list[WorkItem]],
) -> None:
    store, job, folder, items = planned
    review = LiveReview()
    review.start(store, job, folder)
    try:
        end = land(store, folder, items[0])
        review.written([end])
        thumb = thumb_of(folder, end.result.outputs[0])
        assert eventually(thumb.exists), "no thumbnail while the run goes on"
        assert whole_jpeg(thumb)
    finally:
        built = review.finish(store, job, folder)
    assert built.during_run["thumbnails"] == 1
    assert built.thumbnails == 1
    assert gallery_data(folder)["items"]["thumb"][0] == 1


def test_a_sheet_is_drawn_once_all_its_cells_are_done(
    planned: tuple[Store, JobRow, Path, list[WorkItem]],
) -> None:
    store, job, folder, items = planned
    multi = [w for w in items if w.prompt_id == "multi"]
    review = LiveReview()
    review.start(store, job, folder)
    sheet = folder / "contact" / "multi.png"
    try:
        review.written([land(store, folder, w) for w in multi[:3]])
        time.sleep(3 * live.REFRESH_EVERY)
        assert not sheet.exists()  # a cell is still pending
        review.written([land(store, folder, multi[3])])
        assert eventually(sheet.exists), "no sheet while the run goes on"
        drawn = sheet.stat().st_mtime_ns
    finally:
        built = review.finish(store, job, folder)
    assert built.during_run["sheet_pages"] == 1
    assert sheet.stat().st_mtime_ns == drawn  # not drawn again at the end


def test_a_worker_that_failed_leaves_the_whole_build_to_the_end(
    planned: tuple[Store, JobRow, Path, list[WorkItem]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, job, folder, items = planned

    def broken(*args: object) -> None:
        raise RuntimeError("a bug in the live model")

    monkeypatch.setattr(live._State, "__init__", broken)
    review = LiveReview()
    review.start(store, job, folder)
    end = land(store, folder, items[0])
    review.written([end])
    built = review.finish(store, job, folder)
    assert built.during_run == {}
    assert whole_jpeg(thumb_of(folder, end.result.outputs[0]))


def test_attempt_ends_past_the_queue_bound_are_dropped_never_waited_for(
    planned: tuple[Store, JobRow, Path, list[WorkItem]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The run's hook never blocks: past EVENTS_MAX ends it drops them, and the
    end of the run reads the whole job instead."""
    store, job, folder, items = planned
    monkeypatch.setattr(live, "EVENTS_MAX", 2)
    review = LiveReview()  # not started: nothing takes the queued ends
    ends = [land(store, folder, w) for w in items[:3]]
    review.written(ends[:2])
    review.written(ends[2:])
    review.start(store, job, folder)
    built = review.finish(store, job, folder)
    assert built.thumbnails == 3 and built.during_run == {}


# -- a killed run, a large job -------------------------------------------------------


@pytest.mark.slow
def test_a_killed_run_leaves_no_half_thumbnail_and_the_next_run_makes_the_rest(
    tmp_path: Path,
) -> None:
    prompts = "\n".join(f"  - 'harbour {i}'" for i in range(40))
    job = write_job(tmp_path, f"name: killed\nsamples: 4\nprompts:\n{prompts}\n")
    out = tmp_path / "out"
    folder = out / "killed"
    # Real 512 px images, so that thumbnails take long enough to be cut short.
    with SimServer(latency=0.05, image_scale=0.5) as sim:
        proc = spawn("submit", job, "--base-url", sim.url, "--output", out,
                     "--concurrency", "4", "--yes",
                     env={"TOKAIFY_API_KEY": "k"})  # fmt: skip
        assert eventually(
            lambda: (
                len(list((folder / "thumbs").glob("*.jpg"))) >= 3
                if (folder / "thumbs").is_dir()
                else False
            ),
            timeout=60,
        )
        proc.popen.send_signal(signal.SIGKILL)
        proc.finish()
        made = list((folder / "thumbs").glob("*.jpg"))
        assert made and all(whole_jpeg(p) for p in made)
        # What a kill during a write leaves: a hidden temp file, never the file.
        for sub in ("thumbs", "thumbs/refs", "contact"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            (folder / sub / ".x.jpg.0123456789abcdef.tmp").write_bytes(b"\xff\xd8")

        again = spawn("submit", job, "--base-url", sim.url, "--output", out, "--yes",
                      env={"TOKAIFY_API_KEY": "k"})  # fmt: skip
        code, _, err = again.finish(timeout=120)
    assert code == 0, err
    rows = manifest(out, "killed")
    assert len(rows) == 160
    assert all(whole_jpeg(thumb_of(folder, r["outputs"][0])) for r in rows)
    assert list(folder.rglob(".*.tmp")) == []


SENT_OF_LARGE = 200  # items of the 6,000-item job sent by the test's submit


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_job_of_six_thousand_items_gets_its_gallery_after_submit(
    sim: SimServer, tmp_path: Path
) -> None:
    """No item-count cut-off: the gallery of 6,000 items (the simulator's small
    images) is complete when submit returns. All but the last SENT_OF_LARGE were
    answered by an earlier run (recorded through the store, with their images and
    no thumbnails), so the review makes thumbnails for the images that land and
    for those it finds, and sending 6,000 requests does not take most of a
    minute."""
    prompts = "\n".join(f"  - 'harbour {i}'" for i in range(60))
    body = f"name: large\nsamples: 100\nconcurrency: 64\nprompts:\n{prompts}\n"
    spec = load_job(write_job(tmp_path, body))
    workspace = runs.Workspace(tmp_path / "out")
    folder = workspace.job_folder("large")
    store = workspace.open_store()
    try:
        job = store.upsert_job(spec.name, str(spec.path), spec.model)
        store.sync_plan(job, build_plan(spec).items)
        earlier = store.pending_items(job)[:-SENT_OF_LARGE]
        run_id = store.start_run(job, "submit")
        attempts = store.record_attempts(
            [AttemptStart(w.id, run_id, 1) for w in earlier]
        )
        png = io.BytesIO()
        Image.new("RGB", (64, 64), (40, 90, 200)).save(png, "PNG")
        ends = []
        for work, attempt in zip(earlier, attempts, strict=True):
            assert attempt is not None
            name = outputs.item_image_name(work, 0, "png")
            outputs.write_whole(folder / outputs.IMAGES_DIR / name, png.getvalue())
            result = AttemptResult(
                outcome="success",
                reason="ok",
                item_status="succeeded",
                http_status=200,
                outputs=[f"{outputs.IMAGES_DIR}/{name}"],
            )
            ends.append(AttemptEnd(attempt, work.id, result))
        store.record_attempts(ends)
        store.end_run(run_id, "finished")
    finally:
        store.close()

    report = submit(sim, tmp_path, body)

    assert sim.stats()["requests"] == SENT_OF_LARGE
    assert report.exit_code == 0 and report.gallery is not None
    assert report.gallery.index == folder / "index.html"
    items = gallery_data(folder)["items"]
    assert items["n"] == 6000 and items["thumb"] == [1] * 6000
    assert len(os.listdir(folder / "thumbs")) == 6000
    sheets_of = gallery_data(folder)["prompts"]["sheets"]
    assert len(sheets_of) == 60  # a hundred samples: two pages each
    assert all(
        len(s) == 2 and all((folder / p).is_file() for p in s) for s in sheets_of
    )
