"""A thousand requests in flight: 1,024 at once, latency 16 s +- 8 s (seeded, so
every contender gets the same draws in the same order), 8,192 items, answers of
real 1K size (about 1.5 MB of base64). The runner against the google-genai script
with its httpx pool opened to 1,024 connections, and as users write it (httpx's
default pool: at most 100 in flight, so it sends a share of the items only).

Throughput is judged against a perfect scheduler, not against N x L / C: the
simulator records each request's drawn latency, and the same sequence is replayed
greedily over C slots that never idle; its makespan is the best any client could
do with those latencies (the last wave drains, so it is about 0.9 of N x L / C).
The simulator builds each answer once and sends the same bytes again
(`--reuse-answers`), so that it is not the bottleneck; its CPU is reported. Must
not give the contenders different servers, latencies or answers.
"""

from __future__ import annotations

import heapq
import shutil
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from benchmarks.harness import (
    SIM_IMAGE_PAD_OPTION,
    Figures,
    Section,
    SimProcess,
    Verdict,
    Workload,
    columns,
    prompt_texts,
    run_peer,
    run_runner,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from benchmarks.harness import Sizes

# Targets (the numbers).
TARGET_PERFECT_SHARE = 0.95
TARGET_PEAK_RSS_MB = 300.0
TARGET_LOOP_LAG_P99_MS = 20.0
# Bytes added to each 1K PNG: about 1.15 MB of PNG, 1.5 MB of base64, as real ones.
IMAGE_PAD_1K = 1_100_000


def perfect_seconds(latencies: Sequence[float], slots: int) -> float:
    """The makespan of `latencies`, in the order given, over `slots` that never
    idle: each request goes to the slot that frees first."""
    free = [0.0] * max(1, min(slots, len(latencies)))
    end = 0.0
    for latency in latencies:
        done = heapq.heappop(free) + latency
        end = max(end, done)
        heapq.heappush(free, done)
    return end


def run_inflight(sizes: Sizes, workdir: Path, *, peer: bool) -> Section:
    """1,024 requests in flight at real latencies and answer sizes."""
    concurrency = sizes.inflight_concurrency
    workload = Workload(
        sizes.inflight_prompts, sizes.inflight_samples, concurrency, name="inflight"
    )
    written_samples = max(
        1, round(sizes.inflight_samples * sizes.inflight_written_share)
    )
    written = Workload(workload.prompts, written_samples, concurrency, name="inflight")
    texts = prompt_texts(workload.prompts, "inflight")
    folder = workdir / "inflight"
    folder.mkdir(parents=True, exist_ok=True)
    extra = [
        "--latency-jitter",
        str(sizes.inflight_jitter),
        "--seed",
        str(sizes.inflight_seed),
        SIM_IMAGE_PAD_OPTION,
        str(IMAGE_PAD_1K),
        "--reuse-answers",
        "--record-latencies",
    ]
    runs: list[tuple[str, Figures, list[float]]] = []
    with SimProcess(
        latency=sizes.inflight_latency, extra=extra, log=folder / "sim.log"
    ) as sim:
        sim.warm(texts, workload.aspect_ratio, workload.image_size, parallel=len(texts))
        mine = run_runner(sim, workload, folder / "runner", texts=texts, loop_lag=True)
        runs.append(("runner", mine, sim.latencies()))
        _drop_images(folder / "runner")
        if peer:
            opened = run_peer(
                sim,
                workload,
                folder / "peer-opened",
                texts=texts,
                max_connections=concurrency,
            )
            runs.append((f"genai, pool {concurrency}", opened, sim.latencies()))
            _drop_images(folder / "peer-opened")
            as_written = run_peer(sim, written, folder / "peer-written", texts=texts)
            runs.append(("genai as written", as_written, sim.latencies()))
            _drop_images(folder / "peer-written")
    return _report(sizes, workload, runs)


def _drop_images(folder: Path) -> None:
    """A contender's images, once counted: 8,192 of them take about 9 GB."""
    for images in [folder / "images", *folder.glob("out/*/images")]:
        shutil.rmtree(images, ignore_errors=True)


def _report(
    sizes: Sizes, workload: Workload, runs: Sequence[tuple[str, Figures, list[float]]]
) -> Section:
    concurrency = workload.concurrency
    perfect = {
        name: f.items / max(1e-9, perfect_seconds(lat, concurrency))
        for name, f, lat in runs
    }
    section = Section(
        f"inflight: {workload.items} items ({workload.prompts} prompts x "
        f"{workload.samples} samples), {workload.image_size} {workload.aspect_ratio}, "
        f"each PNG padded by {IMAGE_PAD_1K:,} bytes, concurrency {concurrency}, "
        f"latency {sizes.inflight_latency:g} s +- {sizes.inflight_jitter:g} s "
        f"(seed {sizes.inflight_seed})"
    )

    def row(label: str, get: Any, fmt: str) -> tuple[str, list[str]]:
        values = []
        for name, figures, latencies in runs:
            value = get(name, figures, latencies)
            values.append("-" if value is None else fmt.format(value))
        return label, values

    def lag(key: str) -> Any:
        return lambda n, f, lat: (f.extra.get("loop_lag_ms") or {}).get(key)

    requests = [f.server.get("requests", 0) or f.items for _, f, _ in runs]
    rows = [
        row("items", lambda n, f, lat: f.items, "{:d}"),
        row("requests/s", lambda n, f, lat: f.rate, "{:.1f}"),
        row("perfect scheduler requests/s", lambda n, f, lat: perfect[n], "{:.1f}"),
        row("share of perfect", lambda n, f, lat: f.rate / perfect[n], "{:.3f}"),
        row(
            "N x L / C requests/s",
            lambda n, f, lat: concurrency / (sum(lat) / len(lat)) if lat else None,
            "{:.1f}",
        ),
        row("CPU ms/item, sending", lambda n, f, lat: f.cpu_ms_per_item, "{:.2f}"),
        row(
            "CPU ms/item, whole process",
            lambda n, f, lat: f.process_cpu_ms_per_item,
            "{:.2f}",
        ),
        row("peak RSS MB", lambda n, f, lat: f.peak_rss_mb, "{:.0f}"),
        row("event loop lag p50 ms", lag("p50"), "{:.1f}"),
        row("event loop lag p99 ms", lag("p99"), "{:.1f}"),
        row("event loop lag max ms", lag("max"), "{:.1f}"),
        row(
            "s, main() to 1st request",
            lambda n, f, lat: f.first_request["wall"],
            "{:.2f}",
        ),
        row("s, 1st request to last image", lambda n, f, lat: f.window, "{:.1f}"),
        row(
            "s, last image to exit",
            lambda n, f, lat: f.end["wall"] - f.last_image["wall"],
            "{:.2f}",
        ),
        row(
            "server: max in flight",
            lambda n, f, lat: f.server.get("max_in_flight"),
            "{:d}",
        ),
        row(
            "server: connections", lambda n, f, lat: f.server.get("connections"), "{:d}"
        ),
        row("server: requests", lambda n, f, lat: f.server.get("requests"), "{:d}"),
        row(
            "simulator CPU, cores",
            lambda n, f, lat: (f.sim_cpu or 0.0) / f.window,
            "{:.2f}",
        ),
        row(
            "simulator CPU ms/request",
            lambda n, f, lat: 1000 * (f.sim_cpu or 0.0) / max(1, len(lat)),
            "{:.2f}",
        ),
    ]
    section.lines += columns([name for name, _, _ in runs], rows)
    image = runs[0][1].extra.get("image_file_bytes")
    if image:
        section.lines.append(
            f"  image file {image / 1e6:.2f} MB (deleted after each run)"
        )
    for name, figures, _ in runs:
        if figures.errors or figures.images < figures.items:
            section.lines.append(
                f"  ! {name}: {figures.images} images for {figures.items} items, "
                f"{figures.errors} errors"
            )
    section.lines.append(
        "  the script as written sends "
        f"{runs[-1][1].items if len(runs) > 2 else '-'} items: httpx's default pool "
        "keeps at most 100 in flight, so the full set would take about "
        f"{workload.items * sizes.inflight_latency / 100 / 60:.0f} minutes"
        if len(runs) > 2
        else "  google-genai script not run"
    )
    _verdicts(section, runs, perfect)
    section.data = {
        "workload": asdict(workload),
        "latency": sizes.inflight_latency,
        "jitter": sizes.inflight_jitter,
        "seed": sizes.inflight_seed,
        "requests": requests,
        "contenders": {
            name: {**f.as_dict(), "perfect_rate": perfect[name], "latencies": len(lat)}
            for name, f, lat in runs
        },
    }
    return section


def _verdicts(
    section: Section,
    runs: Sequence[tuple[str, Figures, list[float]]],
    perfect: dict[str, float],
) -> None:
    name, runner, _ = runs[0]
    other = runs[1][1] if len(runs) > 1 else None
    other_name = runs[1][0] if len(runs) > 1 else ""
    c = runner.server.get("max_in_flight", 0)
    lag = (runner.extra.get("loop_lag_ms") or {}).get("p99")
    section.verdicts += [
        Verdict(
            f"in flight: throughput >= {TARGET_PERFECT_SHARE} x perfect scheduler",
            f"{runner.rate:.1f}/s ({runner.rate / perfect[name]:.3f})",
            f"{other.rate:.1f}/s ({other.rate / perfect[other_name]:.3f})"
            if other
            else "-",
            f">= {TARGET_PERFECT_SHARE * perfect[name]:.1f}/s",
            runner.rate >= TARGET_PERFECT_SHARE * perfect[name],
            f"{c} in flight at most",
        ),
        Verdict(
            "in flight: throughput >= google-genai script, pool opened",
            f"{runner.rate:.1f}/s",
            f"{other.rate:.1f}/s" if other else "not run",
            ">= peer",
            runner.rate >= other.rate if other else None,
        ),
        Verdict(
            "in flight: CPU per item, while sending",
            f"{runner.cpu_ms_per_item:.2f} ms",
            f"{other.cpu_ms_per_item:.2f} ms" if other else "not run",
            "<= peer",
            runner.cpu_ms_per_item <= other.cpu_ms_per_item if other else None,
            f"whole process {runner.process_cpu_ms_per_item:.2f} ms"
            + (f" (peer {other.process_cpu_ms_per_item:.2f})" if other else ""),
        ),
        Verdict(
            "in flight: peak RSS",
            f"{runner.peak_rss_mb:.0f} MB",
            f"{other.peak_rss_mb:.0f} MB" if other else "-",
            f"<= {TARGET_PEAK_RSS_MB:.0f} MB",
            runner.peak_rss_mb <= TARGET_PEAK_RSS_MB,
        ),
        Verdict(
            "in flight: event loop lag p99",
            "not measured" if lag is None else f"{lag:.1f} ms",
            "-",
            f"< {TARGET_LOOP_LAG_P99_MS:.0f} ms",
            None if lag is None else lag < TARGET_LOOP_LAG_P99_MS,
        ),
    ]
