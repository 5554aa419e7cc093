"""The reference-set legend: the gallery and the contact sheets name each set's
files (paths as written in the job) and show their thumbnails.

The job runs against the simulated API with two reference sets besides the
text-only one: `r1` = a red and a blue image, `r2` = a green JPEG in a subfolder and
the red image again. Each file is one flat colour, so a thumbnail drawn on a sheet
can be found by its pixels.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from runner.review import SHEET_BACKGROUND
from tests.test_review import (
    gallery_data,
    needs_chromium,
    opened,
    sheet_of,
    submit_job,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from runner.review import Review
    from runner.simulate import SimServer
    from tests.test_review import Job

RED, BLUE, GREEN = (220, 30, 40), (30, 60, 220), (40, 190, 70)
FILES = {
    "refs/red.png": RED,
    "refs/blue.png": BLUE,
    "refs/sub/green.jpg": GREEN,
}
REFS_JOB = """
    name: refs
    prompts:
      - id: mug
        text: "Put this logo on a mug"
      - id: plain
        text: "A mug, no logo"
    aspect_ratios: ["1:1", "16:9"]
    references:
      - []
      - [refs/red.png, refs/blue.png]
      - [refs/sub/green.jpg, refs/red.png]
    exclude:
      - {prompt: plain, references: 1}
      - {prompt: plain, references: 2}
"""


def write_references(folder: Path) -> None:
    for name, colour in FILES.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (300, 200), colour).save(path)


@pytest.fixture
def refs_job(sim: SimServer, tmp_path: Path) -> Iterator[Job]:
    write_references(tmp_path)
    job = submit_job(tmp_path, sim, REFS_JOB)
    try:
        yield job
    finally:
        job.store.close()


def sha(folder: Path, name: str) -> str:
    return hashlib.sha256((folder / name).read_bytes()).hexdigest()


def legend_sets(page: str) -> dict[str, list[tuple[str, str | None]]]:
    """The legend section of index.html: set label -> (path, thumbnail src)."""
    from tests.test_review import page_tags

    section = page[page.index("<section id=legend") : page.index("</section>")]
    found: dict[str, list[tuple[str, str | None]]] = {}
    current: list[tuple[str, str | None]] = []
    for tag, attrs in page_tags(section):
        if tag == "div" and attrs.get("class") == "rset":
            current = found.setdefault(str(attrs["id"]).removeprefix("ref-"), [])
        elif tag == "li":
            current.append((str(attrs["title"]), None))
        elif tag == "img":
            current[-1] = (current[-1][0], attrs["src"])
    return found


def test_the_legend_names_each_sets_files_as_written_with_their_thumbnails(
    refs_job: Job, tmp_path: Path
) -> None:
    built = refs_job.review()
    page = built.index.read_text("utf-8")
    red, blue, green = (sha(tmp_path, n) for n in FILES)
    thumb = "thumbs/refs/{}.jpg".format
    assert legend_sets(page) == {
        "r1": [("refs/red.png", thumb(red[:32])), ("refs/blue.png", thumb(blue[:32]))],
        "r2": [
            ("refs/sub/green.jpg", thumb(green[:32])),
            ("refs/red.png", thumb(red[:32])),
        ],
    }
    # the thumbnails are of the files that were sent, made once per content
    made = sorted(p.name for p in (refs_job.folder / "thumbs" / "refs").iterdir())
    assert made == sorted(f"{h[:32]}.jpg" for h in (red, blue, green))
    for name, colour in FILES.items():
        path = refs_job.folder / thumb(sha(tmp_path, name)[:32])
        with Image.open(path) as image:
            assert image.format == "JPEG" and max(image.size) <= 192
            assert close(image.convert("RGB").getpixel((10, 10)), colour)
    # the page's data names them too, for the filters and the cells
    assert gallery_data(refs_job.folder)["references"] == {
        "r1": ["refs/red.png", "refs/blue.png"],
        "r2": ["refs/sub/green.jpg", "refs/red.png"],
    }


def test_reference_thumbnails_are_kept_while_the_content_is_the_same(
    refs_job: Job,
) -> None:
    refs_job.review()
    folder = refs_job.folder / "thumbs" / "refs"
    stamps = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = refs_job.review()
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    assert not again.index_written


def test_a_reference_changed_or_removed_since_it_was_sent_says_so(
    refs_job: Job, tmp_path: Path
) -> None:
    """Its thumbnail would show something that was never sent: there is none."""
    Image.new("RGB", (300, 200), (0, 0, 0)).save(tmp_path / "refs/blue.png")
    (tmp_path / "refs/sub/green.jpg").unlink()
    built = refs_job.review()
    sets = legend_sets(built.index.read_text("utf-8"))
    assert sets["r1"][1] == ("refs/blue.png", None)
    assert sets["r2"][0] == ("refs/sub/green.jpg", None)
    page = built.index.read_text("utf-8")
    assert "file changed since it was sent" in page and "file missing" in page
    assert sets["r1"][0][1] is not None  # red is unchanged


def test_a_job_without_references_has_no_legend(sim: SimServer, tmp_path: Path) -> None:
    job = submit_job(tmp_path, sim, "name: t\nprompts: [a cat, a dog]\n")
    try:
        built = job.review()
    finally:
        job.store.close()
    assert "id=legend" not in built.index.read_text("utf-8")
    assert gallery_data(job.folder)["references"] == {}
    assert all(s.legend_top is None and s.legend == () for s in built.sheets)


# -- on the contact sheets -------------------------------------------------------------


def close(pixel: object, colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=False))


def colour_in(image: Image.Image, colour: tuple[int, int, int]) -> int:
    """Pixels of `image` within JPEG noise of `colour`."""
    data = image.convert("RGB").tobytes()
    pixels = (tuple(data[k : k + 3]) for k in range(0, len(data), 3))
    return sum(1 for pixel in pixels if close(pixel, colour, 30))


def test_a_sheet_ends_with_a_legend_strip_of_the_sets_its_prompt_uses(
    refs_job: Job,
) -> None:
    built = refs_job.review()
    mug, plain = sheet_of(built, "mug"), sheet_of(built, "plain")
    assert mug.legend == ("r1", "r2") and mug.legend_top is not None
    # `plain` sends no reference (its sets are excluded): no strip
    assert plain.legend == () and plain.legend_top is None
    with Image.open(mug.path) as image:
        image.load()
        assert image.size == mug.size
        grid = image.crop((0, 0, mug.size[0], mug.legend_top))
        strip = image.crop((0, mug.legend_top, mug.size[0], mug.size[1]))
    # the three files' thumbnails are drawn in the strip (a 64 px square is about
    # 64 x 43 px of colour for these 3:2 images), red once per set
    assert colour_in(strip, RED) > 2 * 2000
    assert colour_in(strip, BLUE) > 2000 and colour_in(strip, GREEN) > 2000
    assert colour_in(grid, RED) == colour_in(grid, BLUE) == 0
    # with their set labels and paths: text, not just pictures
    grey = strip.convert("L")
    assert sum(grey.histogram()[:110]) > 400
    assert strip.getpixel((strip.width - 3, strip.height - 3)) == SHEET_BACKGROUND


def test_a_legend_change_redraws_the_sheets_that_show_it(
    refs_job: Job, tmp_path: Path
) -> None:
    refs_job.review()
    (tmp_path / "refs/sub/green.jpg").unlink()
    for thumb in (refs_job.folder / "thumbs" / "refs").iterdir():
        thumb.unlink()
    again = refs_job.review()
    assert {s.prompt_id for s in again.sheets if s.written} == {"mug"}


# -- in a real browser -------------------------------------------------------------


@needs_chromium
def test_the_legend_in_chromium(refs_job: Job, tmp_path: Path) -> None:
    built: Review = refs_job.review()
    with opened(built.index) as page:
        legend = page.locator("#legend")
        assert legend.is_visible()
        assert legend.locator("h3").all_inner_texts() == ["r1 2 files", "r2 2 files"]
        names = legend.locator(".rname").all_inner_texts()
        assert names == list(FILES)[:2] + ["refs/sub/green.jpg", "refs/red.png"]
        images = legend.locator("img")
        page.wait_for_function(
            "() => [...document.querySelectorAll('#legend img')].every(i => i.complete)"
        )
        widths = images.evaluate_all("(all) => all.map((i) => i.naturalWidth)")
        assert len(widths) == 4 and all(w > 0 for w in widths)
        # the filter chip of a set names its files as well
        group = page.locator("#filters fieldset").filter(
            has=page.locator("legend", has_text="References")
        )
        title = group.locator("label.chip", has=page.locator("input[value='r1']"))
        assert "refs/red.png, refs/blue.png" in str(title.get_attribute("title"))
        page.screenshot(path=tmp_path / "legend.png")
