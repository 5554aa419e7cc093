"""The README's screenshots of the served gallery, taken from the real page.

    .venv/bin/python docs/screenshots.py      # needs Debian's chromium

Runs the README's worked example in a temporary folder (`--simulate`: no key, no
network), serves the galleries as `runner review JOB --serve` does, marks images
with the keyboard in headless Chromium at a laptop's window size, and writes
docs/served-gallery.png, docs/served-compare.png and docs/served-lineage.png.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from playwright.sync_api import Page, sync_playwright

from runner import runs
from runner.runs.serving import served_gallery

if TYPE_CHECKING:
    from collections.abc import Iterator

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
WINDOW = {"width": 1280, "height": 800}
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]


def runner(*args: str | Path, cwd: Path) -> None:
    """One `runner` command, as the README writes it."""
    command = [sys.executable, "-m", "runner", *map(str, args)]
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)


def ready(page: Page) -> None:
    """The store's marks shown and every change saved."""
    page.wait_for_selector(
        "html[data-mk-ready='1'][data-mk-pending='0']", state="attached"
    )


def to_list(page: Page) -> None:
    """The first prompt's grid just under the filter bar, thumbnails shown."""
    page.evaluate(
        "() => window.scrollTo(0, document.querySelector('#list')"
        ".getBoundingClientRect().top + scrollY"
        " - document.querySelector('#filters').offsetHeight - 12)"
    )
    page.wait_for_timeout(300)


@contextmanager
def served(job: str, out: Path, chromium: str) -> Iterator[Page]:
    """Job `job`'s gallery served as `runner review JOB --serve` serves it, open in
    headless Chromium with the store's marks shown."""
    with (
        sync_playwright() as playwright,
        served_gallery(job, workspace=runs.Workspace(out)) as (server, _),
    ):
        browser = playwright.chromium.launch(
            executable_path=chromium, args=BROWSER_ARGS
        )
        try:
            page = browser.new_page(viewport=WINDOW)
            page.goto(server.url)
            ready(page)
            yield page
        finally:
            browser.close()


def main() -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("chromium is missing: apt-get install chromium")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copytree(REPO / "jobs", work / "jobs")
        out = work / "output"
        runner("submit", "jobs/demo.yaml", "--simulate", "--output", out, cwd=work)
        with served("demo", out, chromium) as page:
            keys = page.keyboard
            # star three, reject one, a note, two chosen for the comparison
            for key in "jsjxjscjjs":
                keys.press(key)
            keys.press("n")
            keys.type("warm light, keep the framing")
            keys.press("Enter")
            keys.press("c")
            keys.press("k")
            ready(page)
            to_list(page)
            page.screenshot(path=DOCS / "served-gallery.png")
            keys.press("v")
            page.wait_for_selector("#mkcmp .mkcard .mkset dd")
            page.wait_for_timeout(300)
            page.screenshot(path=DOCS / "served-compare.png")
        # the next round, from the three stars: each child links to its parent
        for job in ("demo-night", "demo-closer", "demo-4k"):
            runner(
                "submit", f"jobs/{job}.yaml", "--simulate", "--output", out, cwd=work
            )
        with served("demo-night", out, chromium) as page:
            to_list(page)
            page.locator("#list .cell .lin.up a").first.hover()
            page.screenshot(path=DOCS / "served-lineage.png")


if __name__ == "__main__":
    main()
