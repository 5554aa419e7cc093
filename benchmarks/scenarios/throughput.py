"""Throughput and CPU per item: distinct prompts x samples, 1K images, concurrency
64, latency 300 ms; requests/s against the ideal (concurrency / latency) and the
google-genai script, and CPU ms per item.

Both targets come from one run per contender: CPU per item is the CPU spent in the
same window (first request to last image) that the rate is measured over. Must not
give the two contenders different workloads, servers or warm-ups.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from benchmarks.harness import (
    SIM_IMAGE_PAD_OPTION,
    Section,
    SimProcess,
    Verdict,
    Workload,
    prompt_texts,
    run_peer,
    run_runner,
    side_by_side,
)

if TYPE_CHECKING:
    from pathlib import Path

    from benchmarks.harness import Sizes

# Targets (the numbers).
TARGET_IDEAL_SHARE = 0.95
TARGET_CPU_MS_PER_ITEM = 2.0


def run_throughput(
    sizes: Sizes, workdir: Path, *, peer: bool, image_pad: int | None = None
) -> Section:
    """Requests/s and CPU per item, runner vs google-genai, same server."""
    workload = Workload(sizes.prompts, sizes.samples, sizes.concurrency)
    texts = prompt_texts(workload.prompts)
    extra = [SIM_IMAGE_PAD_OPTION, str(image_pad)] if image_pad else []
    folder = workdir / "throughput"
    folder.mkdir(parents=True, exist_ok=True)
    with SimProcess(
        latency=sizes.latency,
        image_scale=sizes.image_scale,
        extra=extra,
        log=folder / "sim.log",
    ) as sim:
        sim.warm(texts, workload.aspect_ratio, workload.image_size)
        runner = run_runner(sim, workload, folder / "runner", texts=texts)
        other = run_peer(sim, workload, folder / "peer", texts=texts) if peer else None
    ideal = workload.concurrency / sizes.latency
    waves = -(-workload.items // workload.concurrency)
    image = runner.extra.get("image_file_bytes")
    section = Section(
        f"throughput: {workload.items} items ({workload.prompts} prompts x "
        f"{workload.samples} samples), {workload.image_size} {workload.aspect_ratio}, "
        f"concurrency {workload.concurrency}, latency {sizes.latency * 1000:.0f} ms"
        + (f", PNGs padded by {image_pad:,} bytes" if image_pad else "")
        + (
            f", simulator --image-scale {sizes.image_scale:g}"
            if sizes.image_scale != 1
            else ""
        )
    )
    section.lines += side_by_side(runner, other, ideal)
    tail_ideal = workload.items / (waves * sizes.latency)
    section.lines.append(
        f"  ideal with the last partial wave: {tail_ideal:.1f} requests/s "
        f"({waves} waves)" + (f"; image file {image / 1024:.0f} KiB" if image else "")
    )
    goal_rate = TARGET_IDEAL_SHARE * ideal
    section.verdicts += [
        Verdict(
            f"throughput >= {TARGET_IDEAL_SHARE} x ideal, c={workload.concurrency}",
            f"{runner.rate:.1f}/s ({runner.rate / ideal:.3f})",
            f"{other.rate:.1f}/s ({other.rate / ideal:.3f})" if other else "-",
            f">= {goal_rate:.1f}/s",
            runner.rate >= goal_rate,
        ),
        Verdict(
            "throughput >= google-genai script",
            f"{runner.rate:.1f}/s",
            f"{other.rate:.1f}/s" if other else "not run",
            ">= peer",
            runner.rate >= other.rate if other else None,
        ),
        Verdict(
            f"CPU per item ({workload.image_size}), while sending",
            f"{runner.cpu_ms_per_item:.2f} ms",
            f"{other.cpu_ms_per_item:.2f} ms" if other else "-",
            f"<= {TARGET_CPU_MS_PER_ITEM} ms",
            runner.cpu_ms_per_item <= TARGET_CPU_MS_PER_ITEM,
            f"whole process incl. start-up: {runner.process_cpu_ms_per_item:.2f} ms"
            + (f" (peer {other.process_cpu_ms_per_item:.2f})" if other else ""),
        ),
    ]
    section.data = {
        "workload": asdict(workload),
        "latency": sizes.latency,
        "ideal": ideal,
        "runner": runner.as_dict(),
        "peer": other.as_dict() if other else None,
    }
    return section
