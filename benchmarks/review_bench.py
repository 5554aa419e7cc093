r"""Review benchmark: build a 2,000-item job's gallery, then use it in Chromium.

    .venv/bin/python benchmarks/review_bench.py
    .venv/bin/python benchmarks/review_bench.py --image-scale 0.25 --keep

The job (20 prompts x 4 aspect ratios x 5 styles x 5 samples by default) is put in
the store directly (`sync_plan`, then one `begin_attempt`/`finish_attempt` per item:
about 90% succeeded, 6% blocked, 4% failed, with usage), and every succeeded item
gets a PNG at the real 1K size of its aspect ratio (`--image-scale 0.25` writes small
ones instead). Then it times `build_review` cold (no thumbnails, no sheets) and warm
(everything up to date), with its stages (store, thumbnails, index, contact_sheets:
the page is written before the sheets are drawn), opens index.html from file:// in
headless Chromium (Debian's `chromium`) and reports navigation timings and how long
filter clicks and the comparison view take to apply (until the next frame).
Prints the figures; exit code 0.
"""

from __future__ import annotations

import argparse
import io
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
from runner.store import AttemptResult, Store

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
        html_mb = cold.index.stat().st_size / 1e6
        print(
            f"build cold: {cold_s:.2f} s ({cold.thumbnails_made:,} thumbnails, "
            f"{pages} contact-sheet pages, index.html {html_mb:.1f} MB)"
        )
        print(f"  stages: {_stages(cold.seconds)}")
        print(
            f"build warm: {warm_s:.2f} s ({warm.thumbnails_made} thumbnails made, "
            f"{sum(s.written for s in warm.sheets)} sheets redrawn)"
        )
        print(f"  stages: {_stages(warm.seconds)}")
        browser(cold.index)
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
    for work in store.pending_items(job):
        item = by_key[work.key]
        attempt = store.begin_attempt(work.id, run_id, 1)
        roll = rng.random()
        usage = {"promptTokenCount": 14, "candidatesTokenCount": 1120}
        if roll < 0.06:
            result = AttemptResult(
                outcome="blocked",
                reason="finishReason IMAGE_SAFETY",
                item_status="blocked",
                finish_reason="IMAGE_SAFETY",
                usage={**usage, "candidatesTokenCount": 0, "totalTokenCount": 14},
            )
        elif roll < 0.10:
            result = AttemptResult(
                outcome="fatal_item",
                reason="400 INVALID_ARGUMENT: Request contains an invalid argument.",
                item_status="failed",
                http_status=400,
            )
        else:
            name = outputs.item_image_name(item, 0, "png")
            path = folder / outputs.IMAGES_DIR / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(rng.choice(pictures[item.aspect_ratio]))
            result = AttemptResult(
                outcome="success",
                reason="ok",
                item_status="succeeded",
                http_status=200,
                finish_reason="STOP",
                usage={**usage, "totalTokenCount": 1134},
                outputs=[f"{outputs.IMAGES_DIR}/{name}"],
            )
        store.finish_attempt(attempt, work.id, result)
    store.end_run(run_id, "finished")
    return store, job, folder, len(plan.items)


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


def browser(index: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        print("browser: skipped, Debian's chromium is not installed")
        return
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
            timing = page.evaluate(
                """() => {
                  const nav = performance.getEntriesByType("navigation")[0];
                  const fcp = "first-contentful-paint";
                  const paint = performance.getEntriesByName(fcp)[0];
                  return {dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
                          fcp: paint ? paint.startTime : null,
                          cells: document.querySelectorAll("td.cell").length};
                }"""
            )
            print(
                f"browser: {timing['cells']:,} cells; DOMContentLoaded "
                f"{timing['dcl']:.0f} ms, first paint {timing['fcp'] or 0:.0f} ms, "
                f"load {timing['load']:.0f} ms (goto wall {wall_ms:.0f} ms)"
            )
            clicks = {
                "status (hide blocked)": "#filters input[value='blocked']",
                "aspect ratio (hide 16:9)": "#filters input[value='16:9']",
                "style (hide watercolour)": "#filters input[value='watercolour']",
            }
            for name, selector in clicks.items():
                click = f"document.querySelector({selector!r}).click()"
                times = [_frame_after(page, click) for _ in range(6)]
                print(
                    f"filter {name}: median {statistics.median(times):.0f} ms, "
                    f"max {max(times):.0f} ms (until the next frame)"
                )
            compare = _frame_after(page, "document.querySelector('button.cmp').click()")
            print(f"comparison view open: {compare:.0f} ms")
            if errors:
                print(f"page errors: {errors}")
        finally:
            launched.close()


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
