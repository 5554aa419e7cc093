r"""The review's floor on this machine: how much image work fits beside a run.

    .venv/bin/python -m benchmarks.review_floor
    .venv/bin/python -m benchmarks.review_floor --prompts 4 --samples 8 --rounds 1

The review scenario's small-image workload (32 prompts x 60 samples, concurrency
64, 300 ms a request, the simulator's 1K PNGs, `--reuse-answers`) is sent with
`runner submit --no-review`, each round three ways:

    none       alone;
    decode     beside a helper process that decodes every image as it lands
               (Pillow, as the review does): what a contact sheet cell needs at
               the very least, since it is drawn from the image's pixels;
    thumbnail  beside a helper that makes every image's thumbnail with the
               review's own code (`thumbnails._thumbnail`: decode, shrink, JPEG,
               written whole by rename), and nothing else: no sheets, no page.

The helper is a separate process scheduled only on idle CPU (SCHED_IDLE), so it
shares no GIL with the run and takes only what the run and the simulator leave:
the most a review could have. It prints when it finished and its CPU per image.
If the thumbnail helper alone ends seconds after the last image, or slows the
run, no review that makes the gallery the SPEC asks for (a thumbnail per image,
contact sheets from their pixels) can meet the issue's "within 5% of
--no-review, complete 1 s after the last image" on this machine.

Prints a table (and `--json PATH` writes the figures); exit code 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import SimProcess, Workload, columns, prompt_texts
from benchmarks.harness.workload import Sizes
from benchmarks.scenarios import review

MODES = ("none", "decode", "thumbnail")
POLL = 0.05  # seconds between the helper's looks at the images folder


def helper(mode: str, images: Path, out: Path, total: int) -> None:
    """The helper process: `mode` on every image of `images` as it lands, until
    `total` are done; prints {"done": epoch seconds, "cpu_ms": per image}."""
    from PIL import Image

    from runner.review.thumbnails import _thumbnail

    if sys.platform.startswith("linux"):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    out.mkdir(parents=True, exist_ok=True)
    done: set[str] = set()
    began = time.process_time()
    while len(done) < total:
        try:
            names = [e.name for e in os.scandir(images) if not e.name.startswith(".")]
        except FileNotFoundError:
            names = []
        new = [n for n in names if n not in done]
        if not new:
            time.sleep(POLL)
            continue
        for name in new:
            src = images / name
            if mode == "decode":
                with Image.open(src) as image:
                    image.load()
            else:
                _thumbnail(src, out / f"{Path(name).stem}.jpg")
            done.add(name)
    cpu = time.process_time() - began
    print(json.dumps({"done": time.time(), "cpu_ms": 1000 * cpu / total}), flush=True)


def one(
    mode: str, sim: SimProcess, workload: Workload, texts: list[str], folder: Path
) -> dict[str, Any]:
    """One `--no-review` run beside the helper for `mode` (none: alone)."""
    here = folder / review.NO_REVIEW
    shutil.rmtree(here, ignore_errors=True)
    shutil.rmtree(folder / "thumbs", ignore_errors=True)
    proc = None
    if mode != "none":
        images = here / "out" / workload.name / "images"
        command = [sys.executable, "-m", "benchmarks.review_floor", "--helper", mode]
        command += [str(images), str(folder / "thumbs"), str(workload.items)]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        time.sleep(0.3)  # started and polling before the run's first image
    sim_before = sim.cpu()
    started = time.time()
    run = review._one(review.NO_REVIEW, sim.url, workload, texts, folder)
    sim_after = sim.cpu()
    found: dict[str, Any] = {
        "mode": mode,
        "wall": run.wall,
        "cpu": run.cpu,
        "last_image": run.last_image,
    }
    if sim_before is not None and sim_after is not None:  # Linux /proc
        found["simulator_cpu"] = sim_after - sim_before
        # what neither the run nor the simulator used of the CPUs
        found["idle_cpu"] = (
            (os.cpu_count() or 1) * run.wall - run.cpu - found["simulator_cpu"]
        )
    if proc is not None:
        assert proc.stdout is not None
        line = proc.stdout.read()
        proc.wait()
        figures = json.loads(line.strip().splitlines()[-1])
        found["helper_cpu_ms"] = figures["cpu_ms"]
        found["helper_after_last_image"] = figures["done"] - started - run.last_image
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sizes = Sizes()
    parser.add_argument("--prompts", type=int, default=sizes.review_prompts)
    parser.add_argument("--samples", type=int, default=sizes.review_samples)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--helper", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.helper:
        mode, images, out, total = args.helper
        helper(mode, Path(images), Path(out), int(total))
        return 0
    workload = Workload(args.prompts, args.samples, sizes.concurrency)
    texts = prompt_texts(workload.prompts)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="review-floor-") as tmp:
        folder = Path(tmp)
        with SimProcess(
            latency=sizes.latency,
            extra=[review.REUSE_ANSWERS],
            log=folder / "sim.log",
            module="runner.simulate",
        ) as sim:
            sim.warm(texts, workload.aspect_ratio, workload.image_size)
            for _ in range(args.rounds):
                for mode in MODES:
                    runs.append(one(mode, sim, workload, texts, folder))
    print(
        f"{workload.items} items ({workload.prompts} prompts x {workload.samples} "
        f"samples), concurrency {workload.concurrency}, latency "
        f"{sizes.latency * 1000:.0f} ms, simulator's 1K PNGs; `runner submit "
        f"--no-review` beside an idle-priority helper process; medians of "
        f"{args.rounds} round(s), {os.cpu_count()} CPUs"
    )
    print("\n".join(_table(runs)))
    if args.json:
        args.json.write_text(json.dumps({"runs": runs}, indent=1), "utf-8")
    return 0


def _table(runs: list[dict[str, Any]]) -> list[str]:
    def median(mode: str, key: str) -> float | None:
        values = [r[key] for r in runs if r["mode"] == mode and key in r]
        return statistics.median(values) if values else None

    def fmt(value: float | None, spec: str) -> str:
        return "-" if value is None else spec.format(value)

    alone = median("none", "wall") or 1.0
    rows = [
        ("s, `--no-review` whole process", "wall", "{:.2f}"),
        ("s, spawn to last image", "last_image", "{:.2f}"),
        ("CPU s, the run", "cpu", "{:.2f}"),
        ("CPU s, the simulator", "simulator_cpu", "{:.2f}"),
        ("CPU s neither used", "idle_cpu", "{:.2f}"),
        ("helper: CPU ms an image", "helper_cpu_ms", "{:.2f}"),
        ("helper: s after the last image", "helper_after_last_image", "{:.2f}"),
    ]
    lines = columns(
        list(MODES),
        [
            (label, [fmt(median(m, key), spec) for m in MODES])
            for label, key, spec in rows
        ],
    )
    lines.append(
        "  run / run alone: "
        + ", ".join(f"{m} {(median(m, 'wall') or 0.0) / alone:.3f}" for m in MODES)
    )
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
