"""Review: `runner submit` as a user runs it (the whole process, from spawn to exit)
with its gallery, the same with `--no-review`, and the google-genai script, on one
server; with the simulator's small images and with images of real size at the
benchmark's pace (300 ms a request, about 200 images a second), then with
real-size images at an API's pace (4 s +- 2 s a request).

Each contender is started `review_rounds` times (once at an API's pace), the three
in turn, each run with a fresh output folder; every figure is the median over the
rounds. The times of the
files on disk say when the last image was written, when the gallery was complete
(index.html is written once every thumbnail is made and gallery-data.js is on
disk) and when the last contact sheet was; the runner's `--json` says how many
thumbnails and sheet pages were made while it sent and what the end of the run
spent its time on. A thumbnail of one of the run's images is then timed alone (CPU
of this process): what one costs.

Images: the simulator's own (1K: a 47 KB flat-colour PNG) and, through
`benchmarks.harness.textured_sim`, photograph-like 1K PNGs of about 1.4 MB. Both
servers run with `--reuse-answers` (each answer built once, then the same bytes
sent again), so that the simulator, which a real run does not have on its machine,
takes little of the two cores the contenders share with it. Must not give the
contenders different workloads or servers.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from benchmarks.harness import (
    REPO,
    BenchError,
    Section,
    SimProcess,
    Verdict,
    Workload,
    clean_env,
    columns,
    peer_command,
    prompt_texts,
    runner_cli,
)
from benchmarks.harness.workload import write_job
from runner.review.thumbnails import Thumbnailer

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from benchmarks.harness import Sizes

# Targets, with the simulator's small images (the numbers).
TARGET_REVIEW_OVERHEAD = 0.05  # whole process, against --no-review
TARGET_GALLERY_AFTER_LAST_IMAGE = 1.0  # seconds
REUSE_ANSWERS = "--reuse-answers"
TEXTURED_SIM = "benchmarks.harness.textured_sim"
RUNNER, NO_REVIEW, PEER = "runner", "--no-review", "google-genai"
THUMBS_TIMED = 20  # images of the run whose thumbnail is timed alone


@dataclass(frozen=True, slots=True)
class Run:
    """One contender process: its times (seconds from spawn), CPU and memory."""

    contender: str
    wall: float  # spawn to exit
    cpu: float  # user + sys of the process (every thread)
    maxrss_mb: float
    images: int
    last_image: float  # spawn to the last image file's mtime
    index: float | None = None  # spawn to index.html's mtime
    sheets: float | None = None  # spawn to the last contact sheet's mtime
    gallery: dict[str, Any] = field(default_factory=dict)  # the runner's --json

    def after_last_image(self, at: float | None) -> float | None:
        return None if at is None else at - self.last_image


@dataclass(frozen=True, slots=True)
class Variant:
    """One server and workload the three contenders are run on."""

    name: str
    module: str  # the simulator, run as `python -m <module>`
    workload: Workload
    latency: float
    jitter: float
    rounds: int
    judged: bool  # the targets are judged on it (else reported)

    def describe(self) -> str:
        w = self.workload
        latency = f"latency {self.latency * 1000:.0f} ms" + (
            f" +- {self.jitter * 1000:.0f}" if self.jitter else ""
        )
        return (
            f"{self.name}: {w.items} items ({w.prompts} prompts x "
            f"{w.samples} samples), concurrency {w.concurrency}, {latency}, "
            f"{self.rounds} round(s), medians"
        )


def variants(sizes: Sizes) -> list[Variant]:
    """The simulator's small images and real-size ones at the benchmark's pace
    (about 200 images a second), then real-size ones at an API's pace (seconds an
    image: what a real run sends)."""
    fast = Workload(sizes.review_prompts, sizes.review_samples, sizes.concurrency)
    paced = Workload(
        sizes.review_paced_prompts, sizes.review_paced_samples, sizes.concurrency
    )
    rounds = sizes.review_rounds
    return [
        Variant("small", "runner.simulate", fast, sizes.latency, 0.0, rounds, True),
        Variant("real-size", TEXTURED_SIM, fast, sizes.latency, 0.0, rounds, False),
        Variant(
            "real-size, API pace",
            TEXTURED_SIM,
            paced,
            sizes.review_paced_latency,
            sizes.review_paced_latency / 2,
            1,
            True,
        ),
    ]


def run_review(sizes: Sizes, workdir: Path, *, peer: bool, sim_help: str) -> Section:
    """Every variant, each contender `rounds` times in turn; one section."""
    reuse = [REUSE_ANSWERS] if REUSE_ANSWERS in sim_help else []
    section = Section(
        "review: `runner submit` as a whole process with its gallery, with "
        "--no-review, and the google-genai script; 1K 1:1"
        + ("" if reuse else "; this simulator has no --reuse-answers")
    )
    for variant in variants(sizes):
        workload = variant.workload
        texts = prompt_texts(workload.prompts)
        folder = workdir / "review" / variant.name.replace(", ", "-").replace(" ", "-")
        folder.mkdir(parents=True, exist_ok=True)
        jitter = ["--latency-jitter", str(variant.jitter), "--seed", "1"]
        with SimProcess(
            latency=variant.latency,
            extra=[*reuse, *(jitter if variant.jitter else [])],
            log=folder / "sim.log",
            module=variant.module,
        ) as sim:
            sim.warm(texts, workload.aspect_ratio, workload.image_size)
            runs = _rounds(sim.url, workload, texts, folder, variant.rounds, peer)
        images = _images_of(folder / RUNNER / "out")
        thumb_ms = _thumbnail_ms(images)
        size = statistics.median(p.stat().st_size for p in images)
        section.lines += _table(variant, runs, thumb_ms, size)
        section.verdicts += _verdicts(variant, runs)
        section.data[variant.name] = {
            "runs": {c: [asdict(r) for r in rounds] for c, rounds in runs.items()},
            "items": workload.items,
            "thumbnail_cpu_ms": thumb_ms,
            "image_bytes": size,
        }
    return section


def _rounds(
    url: str,
    workload: Workload,
    texts: Sequence[str],
    folder: Path,
    rounds: int,
    peer: bool,
) -> dict[str, list[Run]]:
    """Every contender `rounds` times, in turn: --no-review, the runner, the
    script."""
    found: dict[str, list[Run]] = {RUNNER: [], NO_REVIEW: []}
    if peer:
        found[PEER] = []
    for _ in range(rounds):
        for contender in found:
            found[contender].append(_one(contender, url, workload, texts, folder))
    return found


def _one(
    contender: str, url: str, workload: Workload, texts: Sequence[str], folder: Path
) -> Run:
    here = folder / contender
    if contender == PEER:
        command = peer_command(url, workload, here, texts)
        images = here / "images"
    else:
        shutil.rmtree(here, ignore_errors=True)
        job = write_job(here, workload, texts)
        out = here / "out"
        command = [
            *runner_cli(),
            "submit",
            str(job),
            "--base-url",
            url,
            "--yes",
            "--json",
            "--output",
            str(out),
            *(["--no-review"] if contender == NO_REVIEW else []),
        ]
        images = out / workload.name / "images"
    started = time.time()
    wall, cpu, maxrss, stdout = _spawn(command, here / "process.log")
    job_folder = images.parent
    gallery: dict[str, Any] = {}
    if contender != PEER:
        gallery = json.loads(stdout).get("gallery") or {}
    stamps = [e.stat().st_mtime for e in os.scandir(images)]
    if len(stamps) < workload.items:
        raise BenchError(
            f"{contender} wrote {len(stamps)} images of {workload.items}; see "
            f"{here / 'process.log'}"
        )
    index = job_folder / "index.html"
    sheets = (
        [e.stat().st_mtime for e in os.scandir(job_folder / "contact")]
        if (job_folder / "contact").is_dir()
        else []
    )
    return Run(
        contender=contender,
        wall=wall,
        cpu=cpu,
        maxrss_mb=maxrss / 1024,
        images=len(stamps),
        last_image=max(stamps) - started,
        index=index.stat().st_mtime - started if index.is_file() else None,
        sheets=max(sheets) - started if sheets else None,
        gallery=gallery,
    )


def _spawn(command: list[str], log: Path) -> tuple[float, float, int, str]:
    """Run `command` to its end: (wall s, CPU s, peak RSS KiB, stdout). Through
    `harness.launch`: spawned from this process, its peak RSS would read at least
    this process's size (Linux keeps `ru_maxrss` across fork and exec)."""
    env = {**clean_env(), "TOKAIFY_API_KEY": "bench"}
    log.parent.mkdir(parents=True, exist_ok=True)
    figures = log.with_suffix(".figures.json")
    launched = [sys.executable, "-m", "benchmarks.harness.launch", str(figures), "--"]
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [*launched, *command], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=err
        )
        assert proc.stdout is not None
        stdout = proc.stdout.read().decode("utf-8", "replace")
        proc.stdout.close()
        proc.wait()
    if proc.returncode not in (0, 1):
        raise BenchError(f"{command[2:4]} exited {proc.returncode}; see {log}")
    measured = json.loads(figures.read_text("utf-8"))
    return measured["wall"], measured["cpu"], measured["maxrss_kb"], stdout


def _images_of(out: Path) -> list[Path]:
    found = sorted((out / "bench" / "images").iterdir())
    return found[:: max(1, len(found) // THUMBS_TIMED)][:THUMBS_TIMED]


def _thumbnail_ms(images: Sequence[Path]) -> float:
    """Median CPU ms of one thumbnail of these images, made again in this process
    as the review makes it (decode, shrink, JPEG, written by rename)."""
    maker = Thumbnailer(images[0].parent.parent)
    times = []
    for image in images:
        began = time.process_time()
        made = maker.make(f"{image.parent.name}/{image.name}")
        times.append(1000 * (time.process_time() - began))
        if isinstance(made, str):
            raise BenchError(f"no thumbnail of {image}: {made}")
    return statistics.median(times)


def _median(runs: Sequence[Run], get: Callable[[Run], float | None]) -> float | None:
    values = [v for r in runs if (v := get(r)) is not None]
    return statistics.median(values) if values else None


def _fmt(value: float | None, spec: str = "{:.2f}") -> str:
    return "-" if value is None else spec.format(value)


def _table(
    variant: Variant, runs: dict[str, list[Run]], thumb_ms: float, size: float
) -> list[str]:
    names = list(runs)
    rows: list[tuple[str, Callable[[Run], float | None], str]] = [
        ("s, whole process (spawn to exit)", lambda r: r.wall, "{:.2f}"),
        ("s, spawn to last image written", lambda r: r.last_image, "{:.2f}"),
        (
            "s, last image to gallery complete",
            lambda r: r.after_last_image(r.index),
            "{:.2f}",
        ),
        (
            "s, last image to last contact sheet",
            lambda r: r.after_last_image(r.sheets),
            "{:.2f}",
        ),
        ("s, last image to exit", lambda r: r.wall - r.last_image, "{:.2f}"),
        ("CPU s, whole process", lambda r: r.cpu, "{:.2f}"),
        ("peak RSS MB", lambda r: r.maxrss_mb, "{:.0f}"),
    ]
    lines = [f"  {variant.describe()}; {size / 1024:,.0f} KiB an image:"]
    lines += columns(
        names,
        [
            (label, [_fmt(_median(runs[n], get), spec) for n in names])
            for label, get, spec in rows
        ],
    )
    runner, plain = runs[RUNNER], runs[NO_REVIEW]
    ratio = _median(runner, lambda r: r.wall) or 0.0
    ratio /= _median(plain, lambda r: r.wall) or 1.0
    gallery = [r.gallery for r in runner]
    during = _median(runner, lambda r: r.gallery.get("thumbnails_during_run"))
    at_end = _median(runner, lambda r: r.gallery.get("thumbnails_at_end"))
    pages = _median(runner, lambda r: r.gallery.get("sheet_pages_during_run"))
    stages = {
        k: statistics.median(g["seconds"].get(k, 0.0) for g in gallery)
        for k in gallery[0].get("seconds", {})
    }
    extra_cpu = (_median(runner, lambda r: r.cpu) or 0.0) - (
        _median(plain, lambda r: r.cpu) or 0.0
    )
    lines += [
        f"  runner / --no-review, whole process: {ratio:.3f}; review CPU (runner "
        f"minus --no-review): {extra_cpu:.2f} s",
        f"  thumbnails made while sending {_fmt(during, '{:.0f}')}, at the end "
        f"{_fmt(at_end, '{:.0f}')}; contact-sheet pages drawn while sending "
        f"{_fmt(pages, '{:.0f}')}",
        "  the run's end: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in stages.items())
        + f"; one thumbnail alone: {thumb_ms:.1f} ms CPU",
    ]
    return lines


def _verdicts(variant: Variant, runs: dict[str, list[Run]]) -> list[Verdict]:
    """The targets, judged on the small images and at an API's pace; at the
    benchmark's pace the real-size figures are reported, not judged."""
    judged, name = variant.judged, variant.name
    runner = _median(runs[RUNNER], lambda r: r.wall) or 0.0
    plain = _median(runs[NO_REVIEW], lambda r: r.wall) or 0.0
    peer = _median(runs[PEER], lambda r: r.wall) if PEER in runs else None
    after = _median(runs[RUNNER], lambda r: r.after_last_image(r.index))
    goal = 1 + TARGET_REVIEW_OVERHEAD
    return [
        Verdict(
            f"submit with gallery vs --no-review ({name})",
            f"{runner:.2f} s ({runner / plain:.3f} x)",
            f"--no-review {plain:.2f} s",
            f"<= {goal:.2f} x" if judged else "(reported)",
            runner <= goal * plain if judged else None,
        ),
        Verdict(
            f"submit with gallery vs the script ({name})",
            f"{runner:.2f} s",
            _fmt(peer) + " s" if peer is not None else "not run",
            "<= peer" if judged else "(reported)",
            (runner <= peer if peer is not None else None) if judged else None,
        ),
        Verdict(
            f"last image to gallery complete ({name})",
            _fmt(after) + " s",
            "-",
            f"<= {TARGET_GALLERY_AFTER_LAST_IMAGE:g} s" if judged else "(reported)",
            (after is not None and after <= TARGET_GALLERY_AFTER_LAST_IMAGE)
            if judged
            else None,
        ),
    ]
