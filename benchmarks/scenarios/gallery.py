"""A 100,000-item gallery in headless Chromium (issue 14): `benchmarks/review_bench.py`
in a child at this size, judged.

The job is put in the store directly and given small PNGs (`--image-scale 0.05`:
the page is what this measures; thumbnails of real-size images are the review
scenario's). The child builds the gallery cold and warm and opens index.html from
file:// in Debian's chromium; its printed lines are this section's, its figures are
judged here: the first rows painted within 1.5 s, each filter's median click-to-frame
within 100 ms, and the data's bytes per item bounded (it grows with the items, the
markup does not). Without Chromium the browser targets read "not measured".
Must not measure anything itself: review_bench does, in its own process.
"""

from __future__ import annotations

import json
import statistics
import sys
from typing import TYPE_CHECKING, Any

from benchmarks.harness import BenchError, Section, Verdict
from benchmarks.harness.process import run_logged

if TYPE_CHECKING:
    from pathlib import Path

    from benchmarks.harness import Sizes

IMAGE_SCALE = 0.05
JUDGED_ITEMS = 100_000  # the targets are for this size; smaller runs are not judged
TARGET_PAINTED_MS = 1500.0
TARGET_FILTER_MS = 100.0
# gallery-data.js per item (index.html is the same ~47 kB at any size): 93 B at
# 100,000 items (run of 411de63); a page repeating markup per item would take kilobytes.
TARGET_BYTES_PER_ITEM = 150.0
GALLERY_TIMEOUT = 1800.0  # 100,000 items: about 8 minutes on 2 cores


def run_gallery(sizes: Sizes, workdir: Path, *, judge: bool = True) -> Section:
    """review_bench at `sizes.gallery_items`, in a child; its lines and verdicts."""
    folder = workdir / "gallery"
    folder.mkdir(parents=True, exist_ok=True)
    figures_path, log = folder / "figures.json", folder / "review_bench.log"
    command = [
        sys.executable,
        "-m",
        "benchmarks.review_bench",
        "--items",
        str(sizes.gallery_items),
        "--image-scale",
        str(IMAGE_SCALE),
        "--json",
        str(figures_path),
    ]
    figures_path.unlink(missing_ok=True)  # never an earlier run's figures
    with log.open("ab") as err:
        done = run_logged(command, err, capture=True, timeout=GALLERY_TIMEOUT)
    if done.returncode != 0 or not figures_path.is_file():
        tail = log.read_text("utf-8", "replace")[-2000:]
        raise BenchError(f"review_bench exited {done.returncode}; log {log}:\n{tail}")
    figures: dict[str, Any] = json.loads(figures_path.read_text("utf-8"))
    printed = done.stdout.decode("utf-8", "replace").splitlines()
    section = Section(
        f"gallery: {figures['items']:,} items in the store, the page built and opened "
        f"from file:// in headless Chromium (`benchmarks/review_bench.py`)"
    )
    # the job folder is a temporary directory the child removed
    section.lines += ["  " + line for line in printed if not line.startswith("job: ")]
    full = figures["items"] >= JUDGED_ITEMS
    section.verdicts += verdicts(figures, judged=judge and full)
    section.data = figures
    return section


def verdicts(figures: dict[str, Any], *, judged: bool) -> list[Verdict]:
    """First paint, the slowest filter's median, bytes per item."""
    note = "" if judged else f"{figures['items']:,} items: not judged"
    per_item = figures["data_bytes"] / figures["items"]
    found = [
        Verdict(
            f"gallery of {figures['items']:,} items: gallery-data.js bytes per item "
            f"(index.html: {figures['index_bytes'] / 1e3:.0f} kB whatever the size)",
            f"{per_item:.0f} B",
            "-",
            f"<= {TARGET_BYTES_PER_ITEM:.0f} B",
            per_item <= TARGET_BYTES_PER_ITEM if judged else None,
            note,
        )
    ]
    browser = figures.get("browser")
    if browser is None:
        missing = "not measured: Debian's chromium is not installed"
        return [
            *found,
            Verdict("first rows painted", "-", "-", "", None, missing),
            Verdict("filters, slowest median", "-", "-", "", None, missing),
        ]
    slowest = max(statistics.median(t) for t in browser["filters"].values())
    return [
        *found,
        Verdict(
            "gallery: first rows painted (ms from navigation)",
            f"{browser['painted']:.0f} ms",
            "-",
            f"<= {TARGET_PAINTED_MS:.0f} ms",
            browser["painted"] <= TARGET_PAINTED_MS if judged else None,
            note,
        ),
        Verdict(
            "gallery: a filter click to the next frame, slowest median",
            f"{slowest:.0f} ms",
            "-",
            f"<= {TARGET_FILTER_MS:.0f} ms",
            slowest <= TARGET_FILTER_MS if judged else None,
            note,
        ),
        Verdict(
            "gallery: no page errors, thumbnails in view loaded",
            "yes" if _clean(browser) else "no",
            "-",
            "yes",
            _clean(browser),
        ),
    ]


def _clean(browser: dict[str, Any]) -> bool:
    loaded, _lazy, drawn = browser["thumbnails_loaded"]
    return not browser["errors"] and drawn > 0 and loaded == drawn
