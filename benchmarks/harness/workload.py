"""What the scenarios send: their sizes (the full and `--quick` presets), one
contender run's workload, its prompts and the runner's job file for it.

Must not start processes or measure anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

MODEL = "gemini-3.1-flash-image-preview"


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big each scenario is; `quick` and `full` are the two presets."""

    prompts: int = 32  # distinct prompt texts (the simulator caches one canvas each)
    samples: int = 60
    concurrency: int = 64
    latency: float = 0.3
    image_scale: float = 1.0  # simulator's --image-scale for throughput
    memory_prompts: int = 2
    memory_samples: int = 32
    memory_concurrency: int = 32
    scale_items: int = 100_000
    rpm: int = 120
    rpm_items: int = 160
    rpm_concurrency: int = 8
    # in flight: many requests at real latencies and real 1K answer sizes
    inflight_prompts: int = 32
    inflight_samples: int = 256
    inflight_concurrency: int = 1024
    inflight_latency: float = 16.0
    inflight_jitter: float = 8.0  # latency drawn uniformly from latency +- this
    inflight_seed: int = 1  # the simulator's: same latencies for every contender
    inflight_written_share: float = 0.125  # items the 100-connection script sends
    # the Batch API: one batch of small images, one of real 2K-size answers
    batch_small_items: int = 10_000
    batch_big_items: int = 500
    # review: whole-process submit with its gallery, without, and the script
    review_prompts: int = 32
    review_samples: int = 60
    review_rounds: int = 3  # each contender this many times, alternating; medians
    review_paced_prompts: int = 16  # real-size images at an API's pace
    review_paced_samples: int = 16
    review_paced_latency: float = 4.0  # seconds +- half of it
    gallery_items: int = 100_000  # the page in Chromium (review_bench)

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            prompts=16,
            samples=16,
            memory_prompts=1,
            memory_samples=32,
            scale_items=10_000,
            rpm=600,
            rpm_items=100,
            # Fewer items at the same latency: a shorter one would ask this box
            # for more answers a second than two cores can take (2 s: 350/s).
            inflight_samples=64,
            batch_small_items=1_000,
            batch_big_items=50,
            review_prompts=16,
            review_samples=16,
            review_rounds=1,
            review_paced_samples=4,
            gallery_items=10_000,
        )


@dataclass(frozen=True, slots=True)
class Workload:
    """One contender run: what to send and how."""

    prompts: int
    samples: int
    concurrency: int
    aspect_ratio: str = "1:1"
    image_size: str = "1K"
    rpm: float | None = None
    name: str = "bench"

    @property
    def items(self) -> int:
        return self.prompts * self.samples


def prompt_texts(count: int, tag: str = "bench") -> list[str]:
    return [f"{tag} picture {i:03d}, a lighthouse at dusk" for i in range(count)]


def write_job(folder: Path, workload: Workload, texts: Sequence[str]) -> Path:
    """The runner's job file for `workload` (prompts as YAML-safe JSON strings)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        f"name: {workload.name}",
        f"model: {MODEL}",
        f"concurrency: {workload.concurrency}",
        f"samples: {workload.samples}",
        f"aspect_ratios: [{json.dumps(workload.aspect_ratio)}]",
        f"image_sizes: [{json.dumps(workload.image_size)}]",
        "max_attempts: 10",
        "prompts:",
        *(f"  - {json.dumps(t)}" for t in texts),
    ]
    if workload.rpm is not None:
        lines.append(f"rpm: {workload.rpm:g}")
    path = folder / f"{workload.name}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
