"""The Batch API transport (issue 16): a 10,000-item batch of the simulator's small
images (how long the input takes to build, to upload and create, and the results to
ingest) and a 500-item batch of real 2K-size answers (peak RSS: the result file is
read as it streams in, never held whole).

Each run is one `runner submit --batch` (`submit_spec` in a child) against a
simulator whose batches start at once and run at least half a second; the child
marks each phase from its progress. The API's own turn (answering the lines) is
the simulator's CPU, not the runner's, and is shown apart. Must not judge anything
but peak RSS and that no batch was made twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from benchmarks.harness import (
    SIM_IMAGE_PAD_OPTION,
    Section,
    SimProcess,
    Verdict,
    Workload,
    prompt_texts,
    run_runner,
)

if TYPE_CHECKING:
    from pathlib import Path

    from benchmarks.harness import Figures, Sizes

TARGET_PEAK_RSS_MB = 200.0
BATCH_RUNNING = 0.5  # the simulator's --batch-running: seconds a batch runs at least
POLL = 0.5  # RUNNER_BATCH_POLL: the first wait between looks at a batch
IMAGE_PAD_2K = 3_000_000  # bytes added to each 2K PNG: a real 2K answer's size
SAMPLES = 50  # per prompt: the simulator draws one canvas per prompt text


def run_batch(sizes: Sizes, workdir: Path) -> Section:
    """One batch of small images, one of 2K-size answers, each by `--batch`."""
    folder = workdir / "batch"
    folder.mkdir(parents=True, exist_ok=True)
    small = _one(
        folder / "small",
        _workload(sizes.batch_small_items, "1K", "batchsmall"),
        image_scale=0.0625,
        extra=[],
    )
    big = _one(
        folder / "2k",
        _workload(sizes.batch_big_items, "2K", "batch2k"),
        image_scale=1.0,
        extra=[SIM_IMAGE_PAD_OPTION, str(IMAGE_PAD_2K)],
    )
    section = Section(
        f"batch: one `--batch` submit each, the simulator's batches start at once and "
        f"run at least {BATCH_RUNNING} s, polled from every {POLL} s"
    )
    section.lines += _lines(f"{small.items:,} small images", small)
    section.lines += _lines(
        f"{big.items:,} 2K-size answers (PNG + {IMAGE_PAD_2K / 1e6:.0f} MB)", big
    )
    once = all(
        n == 1 for f in (small, big) for n in f.server["batch"]["creates"].values()
    )
    section.verdicts += [
        Verdict(
            f"peak RSS, {big.items} items of 2K-size answers by batch",
            f"{big.peak_rss_mb:.0f} MB",
            "-",
            f"<= {TARGET_PEAK_RSS_MB:.0f} MB",
            big.peak_rss_mb <= TARGET_PEAK_RSS_MB,
        ),
        Verdict(
            "every batch created once, every image written",
            "yes" if once and _complete(small) and _complete(big) else "no",
            "-",
            "yes",
            once and _complete(small) and _complete(big),
        ),
    ]
    section.data = {"small": small.as_dict(), "2k": big.as_dict()}
    return section


def _workload(items: int, image_size: str, name: str) -> Workload:
    samples = min(items, SAMPLES)
    return Workload(items // samples, samples, 64, image_size=image_size, name=name)


def _one(
    folder: Path, workload: Workload, *, image_scale: float, extra: list[str]
) -> Figures:
    texts = prompt_texts(workload.prompts, workload.name)
    folder.mkdir(parents=True, exist_ok=True)
    options = ["--batch-pending", "0", "--batch-running", str(BATCH_RUNNING), *extra]
    with SimProcess(
        latency=0.0, image_scale=image_scale, extra=options, log=folder / "sim.log"
    ) as sim:
        return run_runner(
            sim, workload, folder / "runner", texts=texts, batch_poll=POLL
        )


def _complete(f: Figures) -> bool:
    return f.images == f.items and f.server["batch"]["lines"] == f.items


def _lines(what: str, f: Figures) -> list[str]:
    """The phases of one batch run, in seconds of wall time."""
    m: dict[str, Any] = f.extra.get("batch_marks", {})
    wall = {k: v["wall"] for k, v in m.items()}
    batch = f.server["batch"]
    inputs = "a JSONL file, uploaded" if batch["uploads"] else "inline"
    return [
        f"  {what}: {len(batch['creates'])} batch(es), input {inputs}; "
        f"{batch['deletes']} uploaded input(s) deleted after",
        f"    plan and store {wall['batch_run']:.1f} s, build the input "
        f"{wall['batch_built'] - wall['batch_run']:.1f} s, upload and create "
        f"{wall['batch_created'] - wall['batch_built']:.1f} s, the API's turn "
        f"{wall['batch_ended'] - wall['batch_created']:.1f} s, ingest the results "
        f"{f.last_image['wall'] - wall['batch_ended']:.1f} s, manifest and exit "
        f"{f.end['wall'] - f.last_image['wall']:.1f} s",
        f"    wall {f.end['wall']:.1f} s, CPU {f.process_cpu:.1f} s "
        f"(ingest {f.last_image['cpu'] - m['batch_ended']['cpu']:.1f} s), "
        f"peak RSS {f.peak_rss_mb:.0f} MB; simulator CPU "
        + ("-" if f.sim_cpu is None else f"{f.sim_cpu:.1f} s"),
    ]
