r"""Review benchmark: build a job's gallery, then use it in Chromium.

    .venv/bin/python benchmarks/review_bench.py
    .venv/bin/python benchmarks/review_bench.py --image-scale 0.25 --keep
    .venv/bin/python benchmarks/review_bench.py --items 100000 --image-scale 0.05

The job (items/100 prompts x 4 aspect ratios x 5 styles x 5 samples; 2,000 items by
default) is put in the store directly (`sync_plan`, then batched `record_attempts`:
about 90% succeeded, 6% blocked, 4% failed, with usage), and every succeeded item
gets a PNG at the real 1K size of its aspect ratio (`--image-scale 0.05` writes small
ones instead). Then it times `build_review` cold (no thumbnails, no sheets) and warm
(everything up to date), with its stages (store, thumbnails, index: the data file
and the page, contact_sheets; the page is written before the sheets are drawn),
and the size of index.html and gallery-data.js per item. It opens index.html from
file:// in headless Chromium (Debian's `chromium`) and reports when the first rows
were drawn and painted (the page's `gallery:rows` and `gallery:painted` marks), how
long filter clicks, a jump to the middle of the list and the comparison view take
to apply (until the next frame), and that the thumbnails in view load. Prints the
figures (and writes them as JSON with `--json PATH`: `python -m benchmarks.bench
--only gallery` runs this at 100,000 items and judges them); exit code 0.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw, ImageFont

from runner import outputs
from runner.plan import build_plan
from runner.review import build_review
from runner.simulate import image_dimensions
from runner.spec import load_job
from runner.store import AttemptEnd, AttemptResult, AttemptStart, Store

if TYPE_CHECKING:
    from collections.abc import Mapping

STYLES = ["flat vector", "isometric 3D", "watercolour", "noir photo", "claymation"]
ASPECTS = ["16:9", "1:1", "9:16", "4:3"]
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--items", type=int, default=2000, help="about; a multiple of 100"
    )
    parser.add_argument("--image-scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the job folder")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="review-bench-"))
    try:
        started = time.perf_counter()
        store, job, folder, n = make_job(
            workdir, args.items, args.image_scale, args.seed
        )
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
        setup_s = time.perf_counter() - started
        print(f"job: {n:,} items in {folder} (set up in {setup_s:.1f} s)")

        cold_t = time.perf_counter()
        cold = build_review(store, job, folder)
        cold_s = time.perf_counter() - cold_t
        warm_t = time.perf_counter()
        warm = build_review(store, job, folder)
        warm_s = time.perf_counter() - warm_t
        store.close()
        pages = len(cold.contact_sheets)
        page_b, data_b = cold.index.stat().st_size, cold.data.stat().st_size
        figures: dict[str, Any] = {
            "items": n,
            "setup_s": setup_s,
            "build_cold_s": cold_s,
            "build_cold_stages": dict(cold.seconds),
            "thumbnails_made": cold.thumbnails_made,
            "sheet_pages": pages,
            "build_warm_s": warm_s,
            "index_bytes": page_b,
            "data_bytes": data_b,
            "bytes_per_item": (page_b + data_b) / n,
        }
        print(
            f"build cold: {cold_s:.2f} s ({cold.thumbnails_made:,} thumbnails, "
            f"{pages} contact-sheet pages)"
        )
        print(f"  stages: {_stages(cold.seconds)}")
        print(
            f"build warm: {warm_s:.2f} s ({warm.thumbnails_made} thumbnails made, "
            f"{sum(s.written for s in warm.sheets)} sheets redrawn)"
        )
        print(f"  stages: {_stages(warm.seconds)}")
        print(
            f"files: index.html {page_b / 1e3:,.0f} kB + gallery-data.js "
            f"{data_b / 1e6:,.2f} MB = {(page_b + data_b) / n:,.0f} bytes per item "
            f"(data alone {data_b / n:,.0f}; thumbs/ not counted)"
        )
        figures["browser"] = browser(cold.index)
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
        if args.keep:
            print(f"kept: {folder}")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _stages(seconds: Mapping[str, float]) -> str:
    return ", ".join(f"{name} {value:.2f} s" for name, value in seconds.items())


def make_job(
    workdir: Path, items: int, scale: float, seed: int
) -> tuple[Store, Any, Path, int]:
    rng = random.Random(seed)
    prompts = max(1, items // (len(ASPECTS) * len(STYLES) * 5))
    listed = "\n".join(
        f'  - id: scene{i:02d}\n    text: "Scene {i}: a harbour at dusk, {{style}}"'
        for i in range(prompts)
    )
    job_file = workdir / "bench.yaml"
    job_file.write_text(
        textwrap.dedent(
            f"""\
            name: bench
            prompts:
            {{listed}}
            vars:
              style: {STYLES!r}
            aspect_ratios: {ASPECTS!r}
            samples: 5
            """
        ).replace("{listed}", listed),
        encoding="utf-8",
    )
    spec = load_job(job_file)
    plan = build_plan(spec)
    output = workdir / "output"
    store = Store.for_output(output)
    job = store.upsert_job(spec.name, str(job_file), spec.model)
    store.sync_plan(job, plan.items)
    run_id = store.start_run(job, "bench")
    folder = outputs.job_dir(output, spec.name)
    pictures = {ratio: _pictures(ratio, scale, rng) for ratio in ASPECTS}
    by_key = {item.key: item for item in plan.items}
    pending = store.pending_items(job)
    for start in range(0, len(pending), 1000):
        batch = pending[start : start + 1000]
        ids = store.record_attempts([AttemptStart(w.id, run_id, 1) for w in batch])
        ends = []
        for work, attempt in zip(batch, ids, strict=True):
            assert attempt is not None
            result = _result(folder, by_key[work.key], pictures, rng)
            ends.append(AttemptEnd(attempt, work.id, result))
        store.record_attempts(ends)
    store.end_run(run_id, "finished")
    return store, job, folder, len(plan.items)


def _result(
    folder: Path, item: Any, pictures: Mapping[str, list[bytes]], rng: random.Random
) -> AttemptResult:
    """An item's end: blocked, failed, or succeeded with its image written."""
    roll = rng.random()
    usage = {"promptTokenCount": 14, "candidatesTokenCount": 1120}
    if roll < 0.06:
        return AttemptResult(
            outcome="blocked",
            reason="finishReason IMAGE_SAFETY",
            item_status="blocked",
            finish_reason="IMAGE_SAFETY",
            usage={**usage, "candidatesTokenCount": 0, "totalTokenCount": 14},
        )
    if roll < 0.10:
        return AttemptResult(
            outcome="fatal_item",
            reason="400 INVALID_ARGUMENT: Request contains an invalid argument.",
            item_status="failed",
            http_status=400,
        )
    name = outputs.item_image_name(item, 0, "png")
    path = folder / outputs.IMAGES_DIR / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(rng.choice(pictures[item.aspect_ratio]))
    return AttemptResult(
        outcome="success",
        reason="ok",
        item_status="succeeded",
        http_status=200,
        finish_reason="STOP",
        usage={**usage, "totalTokenCount": 1134},
        outputs=[f"{outputs.IMAGES_DIR}/{name}"],
    )


def _pictures(ratio: str, scale: float, rng: random.Random) -> list[bytes]:
    """A few distinct PNGs at the simulated model's size for `ratio`: soft gradients
    and shapes, so they compress (and decode) about like generated art."""
    width, height = image_dimensions(ratio, "1K", scale=scale)
    font = ImageFont.load_default(size=max(12, height // 12))
    found = []
    for n in range(4):
        top = tuple(rng.randrange(40, 220) for _ in range(3))
        bottom = tuple(rng.randrange(20, 200) for _ in range(3))
        gradient = Image.linear_gradient("L").resize((width, height))
        image = Image.composite(
            Image.new("RGB", (width, height), top),
            Image.new("RGB", (width, height), bottom),
            gradient,
        )
        draw = ImageDraw.Draw(image)
        for _ in range(12):
            x, y = rng.randrange(width), rng.randrange(height)
            r = rng.randrange(10, max(11, width // 5))
            fill = tuple(rng.randrange(256) for _ in range(3))
            draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
        draw.text((width // 20, height // 2), f"{ratio} #{n}", font=font, fill="white")
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        found.append(buffer.getvalue())
    return found


def browser(index: Path) -> dict[str, Any] | None:
    """The page in headless Chromium: its figures (ms), None without Chromium."""
    chromium = shutil.which("chromium")
    if chromium is None:
        print("browser: skipped, Debian's chromium is not installed")
        return None
    figures: dict[str, Any] = {}
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium, args=BROWSER_ARGS
        )
        try:
            page = launched.new_page(viewport={"width": 1440, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            wall = time.perf_counter()
            page.goto(index.as_uri(), wait_until="load")
            wall_ms = (time.perf_counter() - wall) * 1000
            page.wait_for_function(
                "() => performance.getEntriesByName('gallery:painted').length"
            )
            timing = page.evaluate(
                """() => {
                  const at = (name) => performance.getEntriesByName(name)[0];
                  const nav = performance.getEntriesByType("navigation")[0];
                  const fcp = at("first-contentful-paint");
                  return {dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
                          fcp: fcp ? fcp.startTime : 0,
                          rows: at("gallery:rows").startTime,
                          painted: at("gallery:painted").startTime,
                          drawn: document.querySelectorAll("#list .cell").length,
                          items: window.RUNNER_GALLERY.items.n};
                }"""
            )
            print(
                f"browser: {timing['items']:,} items, {timing['drawn']:,} cells drawn; "
                f"first contentful paint {timing['fcp']:.0f} ms, first rows drawn "
                f"{timing['rows']:.0f} ms, painted by {timing['painted']:.0f} ms; "
                f"DOMContentLoaded {timing['dcl']:.0f} ms, load {timing['load']:.0f} "
                f"ms (goto wall {wall_ms:.0f} ms)"
            )
            figures.update(timing, goto_ms=wall_ms)
            page.wait_for_function(
                """() => [...document.querySelectorAll("#list img")]
                  .filter((i) => i.getBoundingClientRect().top < innerHeight)
                  .every((i) => i.complete)""",
                timeout=60_000,
            )
            loaded = page.evaluate(
                """() => { const imgs = [...document.querySelectorAll("#list img")];
                  return [imgs.filter((i) => i.naturalWidth > 0).length,
                          imgs.filter((i) => i.loading === "lazy").length,
                          imgs.length]; }"""
            )
            print(
                f"thumbnails: {loaded[0]} of {loaded[2]} drawn have loaded "
                f"({loaded[1]} lazy)"
            )
            figures["thumbnails_loaded"] = loaded
            figures["filters"] = {}
            clicks = {
                "status (hide blocked)": "#filters input[value='blocked']",
                "aspect ratio (hide 16:9)": "#filters input[value='16:9']",
                "style (hide watercolour)": "#filters input[value='watercolour']",
            }
            for name, selector in clicks.items():
                click = f"document.querySelector({selector!r}).click()"
                times = [_frame_after(page, click) for _ in range(6)]
                figures["filters"][name] = times
                print(
                    f"filter {name}: median {statistics.median(times):.0f} ms, "
                    f"max {max(times):.0f} ms (until the next frame)"
                )
            jumps = [_jump(page, f) for f in (0.5, 0.9, 0.1, 0.7)]
            print(
                f"jump in the list (scrollTo 50%, 90%, 10%, 70%): rows in view after "
                f"median {statistics.median(jumps):.0f} ms, max {max(jumps):.0f} ms"
            )
            page.evaluate("() => window.scrollTo(0, 0)")
            page.wait_for_selector("button.cmp")
            compare = _frame_after(page, "document.querySelector('button.cmp').click()")
            print(f"comparison view open: {compare:.0f} ms")
            figures.update(jumps=jumps, compare=compare, errors=errors)
            if errors:
                print(f"page errors: {errors}")
        finally:
            launched.close()
    return figures


def _jump(page: Any, fraction: float) -> float:
    """ms from scrolling to `fraction` of the page to the first frame whose middle
    of the window shows a drawn row."""
    result: float = page.evaluate(
        f"""() => new Promise((resolve) => {{
              const t0 = performance.now();
              scrollTo(0, document.documentElement.scrollHeight * {fraction});
              const check = () => {{
                const at = document.elementFromPoint(innerWidth / 2, innerHeight / 2);
                if (at && at.closest(".blk")) setTimeout(
                  () => resolve(performance.now() - t0), 0);
                else requestAnimationFrame(check);
              }};
              requestAnimationFrame(check);
            }})"""
    )
    return result


def _frame_after(page: Any, action: str) -> float:
    """ms from running `action` to the first frame after it (style, layout, paint)."""
    result: float = page.evaluate(
        f"""() => new Promise((resolve) => {{
              const t0 = performance.now();
              {action};
              requestAnimationFrame(() => setTimeout(
                () => resolve(performance.now() - t0), 0));
            }})"""
    )
    return result


if __name__ == "__main__":
    sys.exit(main())
