"""A large gallery in Chromium: 3,000 items, drawn a screenful at a time.

The job is the review benchmark's (`benchmarks/review_bench.py`, which measures the
same page at 100,000 items): 30 prompts x 4 aspect ratios x 5 styles x 5 samples,
about 90% succeeded with a small image each, 6% blocked, 4% failed, recorded through
the store. Nothing here is timed; the benchmark prints the figures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from benchmarks.review_bench import make_job
from runner.review import build, build_review, data
from tests.test_review import (
    BROWSER_ARGS,
    CHROMIUM,
    DRAWN,
    chip,
    gallery_data,
    needs_chromium,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from playwright.sync_api import Browser, Page

    from runner.review import Review
    from runner.store import JobRow, Store

ITEMS = 3000
# The module's fixture writes a 3,000-item job and its thumbnails (about 10 s on 2
# busy cores), which counts against the first test's time.
pytestmark = pytest.mark.timeout(90)


class Large:
    def __init__(self, store: Store, job: JobRow, folder: Path) -> None:
        self.store, self.job, self.folder = store, job, folder

    def review(self) -> Review:
        return build_review(self.store, self.job, self.folder)


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Large]:
    store, job, folder, n = make_job(tmp_path_factory.mktemp("large"), ITEMS, 0.02, 7)
    assert n == ITEMS
    # patched for the whole module (its builds included)
    with pytest.MonkeyPatch.context() as patch:
        # The page is what this module is about; sheets are tested elsewhere and
        # drawing 30 of 100 cells each would double its time.
        patch.setattr(build, "draw_sheets", lambda pages: None)
        # 30 prompts: more than this many values get a search box, not chips
        patch.setattr(data, "CHIP_MAX", 20)
        large = Large(store, job, folder)
        large.review()
        try:
            yield large
        finally:
            store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for the module's tests (each gets a page of its own)."""
    assert CHROMIUM, "chromium is missing: .ci/run installs it with apt-get"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=BROWSER_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(large: Large, browser: Browser) -> Iterator[Page]:
    """The large gallery, its first rows drawn; it must raise no error."""
    opened_page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    opened_page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        opened_page.goto((large.folder / "index.html").as_uri())
        opened_page.wait_for_function(DRAWN)
        yield opened_page
    finally:
        opened_page.close()
    assert errors == []


def drawn(page: Page, selector: str = "#list .cell") -> int:
    return page.locator(selector).count()


def in_view(page: Page, selector: str) -> bool:
    """Whether an element matching `selector` is inside the window."""
    found: bool = page.evaluate(
        """(selector) => [...document.querySelectorAll(selector)].some((e) => {
             const box = e.getBoundingClientRect();
             return box.bottom > 0 && box.top < innerHeight && box.height > 0;
           })""",
        selector,
    )
    return found


def test_the_data_file_grows_with_items_not_markup(large: Large) -> None:
    """About 100 bytes an item, most of it the image's name: no per-item keys or
    markup (a page of table cells took about 700)."""
    page = (large.folder / "index.html").stat().st_size
    data_file = (large.folder / "gallery-data.js").stat().st_size
    names = sum(len(i) + 3 for i in gallery_data(large.folder)["items"]["image"])
    assert page < 64_000
    assert data_file < names + 60 * ITEMS


@needs_chromium
def test_the_first_rows_are_drawn_and_only_those_near_the_window(page: Page) -> None:
    assert in_view(page, "#list .blk.row")
    assert page.locator("#shown").inner_text() == f"{ITEMS:,}"
    # a screenful and a margin, not 3,000 cells
    assert 0 < drawn(page) <= 100
    assert page.locator(".blk.head").first.get_attribute("data-prompt") == "scene00"


@needs_chromium
def test_thumbnails_are_lazy_and_those_in_view_load(page: Page) -> None:
    page.wait_for_function(
        """() => [...document.querySelectorAll("#list img")]
             .filter((i) => i.getBoundingClientRect().top < innerHeight)
             .every((i) => i.complete)"""
    )
    images = page.locator("#list img").evaluate_all(
        """(all) => all.map((i) => [i.loading, i.naturalWidth,
             i.getBoundingClientRect().top < innerHeight])"""
    )
    assert images and all(loading == "lazy" for loading, _, _ in images)
    assert all(width > 0 for _, width, seen in images if seen)


@needs_chromium
def test_scrolling_draws_the_rows_that_come_into_view(page: Page) -> None:
    page.evaluate("() => scrollTo(0, document.documentElement.scrollHeight)")
    page.wait_for_function(
        "() => document.querySelector(\".blk.row[data-prompt='scene29']\")"
    )
    assert in_view(page, ".blk.row[data-prompt='scene29']")
    # the first prompt's blocks are gone from the page, not just out of view
    assert drawn(page, ".blk[data-prompt='scene00']") == 0
    assert drawn(page) <= 100
    page.evaluate("() => scrollTo(0, document.documentElement.scrollHeight / 2)")
    page.wait_for_function(
        """() => { const at = document.elementFromPoint(innerWidth / 2,
                                                       innerHeight / 2);
                   return at && at.closest(".blk"); }"""
    )


@needs_chromium
def test_a_filter_narrows_the_rows(page: Page, large: Large) -> None:
    statuses = gallery_data(large.folder)["axes"][0]
    blocked = statuses["counts"][statuses["values"].index("blocked")]
    chip(page, "Status", "blocked").click()
    assert page.locator("#shown").inner_text() == f"{ITEMS - blocked:,}"
    assert drawn(page, "#list .cell.s-blocked:not(.off)") == 0
    assert drawn(page, "#list .cell.s-succeeded") > 0
    page.locator("#reset").click()
    # the prompt filter is a search box at this size: one prompt's 100 items left
    page.locator("#filters input[type=search]").fill("scene07")
    page.wait_for_function(
        "() => document.querySelector('#shown').textContent === '100'"
    )
    heads = page.locator(".blk.head").evaluate_all(
        "(all) => all.map((h) => h.dataset.prompt)"
    )
    assert heads == ["scene07"]
    page.locator("#reset").click()
    assert page.locator("#shown").inner_text() == f"{ITEMS:,}"


@needs_chromium
def test_a_list_too_tall_for_one_page_is_paged(
    large: Large, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data, "PAGE_MAX_PX", 40_000)  # about 150 rows a page
    large.review()
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto((large.folder / "index.html").as_uri())
        page.wait_for_function(DRAWN)
        pager = page.locator("nav.pager").first
        assert pager.is_visible()
        where = pager.locator(".where").inner_text()
        assert where.startswith("page 1 of ")
        pages = int(where.split(" of ")[1].split(" ")[0])
        assert pages >= 4
        first = page.locator(".blk.head").first.get_attribute("data-prompt")
        pager.locator("button.next").click()
        assert pager.locator(".where").inner_text().startswith("page 2 of ")
        # a page starts with a prompt's header, repeated when the page starts
        # inside that prompt
        head = page.locator(".blk").first
        assert "head" in str(head.get_attribute("class"))
        assert head.get_attribute("data-prompt") != first
        page.close()
    finally:
        monkeypatch.undo()
        large.review()  # the module's other tests see one page
