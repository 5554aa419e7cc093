r"""Benchmarks: the runner against the script a user would write instead.

The runner is API-bound: it should keep exactly as many requests in flight as allowed
and cost nothing on top. Every scenario starts the simulated API in its own process
(`python -m runner.simulate`) and runs each contender in its own process, so process
CPU time and peak RSS are the contender's alone. The contenders: the runner
(`runs.execution.submit_spec` in a child, as `runner submit --json` calls it) and
`benchmarks/peer_genai.py` (google-genai's async client under an asyncio semaphore,
one file per image), same workload, same server, one after the other.

- throughput: distinct prompts x samples, 1K images, concurrency 64, latency 300 ms:
  requests/s against the ideal (concurrency / latency), CPU ms per item.
- memory: 4K-size answers of about 20 MB base64 at concurrency 32: peak RSS. The
  PNGs are padded with random bytes (`--image-pad-bytes`); a simulator without that
  option pads the body with a 20 MB text part instead (the 'huge' fault), and the
  report says so.
- scale: a 100,000-item grid: plan + store, `runner status` with 300,000 attempts,
  and a 99%-done job resumed to its first request.
- rpm: a simulated 120 requests-per-minute limit (429 beyond it) and `rpm: 120` in
  the job file: rate achieved and share of requests rejected (needs the
  simulator's `--rpm-limit`; reported as not measured without it).
- inflight: 1,024 requests in flight, latency 16 s +- 8 s (seeded), 8,192 items,
  answers of real 1K size: requests/s against a perfect scheduler replaying the
  simulator's own latencies, the google-genai script with its pool opened and as
  written, peak RSS, CPU per item, the event loop's lag.
- batch: `--batch` submits of 10,000 small images and of 500 2K-size answers:
  the time to build, upload and create the input, and to ingest the results;
  peak RSS (runner only: the script has no batch counterpart).
- review: `runner submit` as a whole process with its gallery, the same with
  `--no-review` and the google-genai script, with the simulator's small images and
  with real-size ones: wall time, when the gallery was complete after the last
  image, what the end of the run spends its time on.
- gallery: a 100,000-item gallery (`benchmarks/review_bench.py` in a child): the
  build cold and warm, bytes per item, and in headless Chromium the first rows
  painted, filter clicks, jumps in the list (runner only: the script has no gallery).

    .venv/bin/python -m benchmarks.bench            # everything, about 35 minutes
    .venv/bin/python -m benchmarks.bench --quick    # smaller runs of each scenario
    .venv/bin/python -m benchmarks.bench --only throughput --no-peer
    .venv/bin/python -m benchmarks.bench --only review     # about 6 minutes

Needs the `bench` dependency group for the peer (`pip install google-genai`); without
it, or with `--no-peer`, only the runner is measured. Exit code 0 when every measured
target holds, 1 when one misses (the report says which).

This module is the entry point only: the table of scenarios and the dispatch to a
child (`_runner`, `_scale`); the machinery is in `benchmarks/harness/`, each scenario
in `benchmarks/scenarios/`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from benchmarks.harness import RUNNER_CHILD, cli, runner_child

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from benchmarks.harness import Scenario


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [RUNNER_CHILD]:
        return runner_child.main(argv[1:])
    # Imported only here: the runner's child must load none of the scenarios'
    # imports (the store, SQLAlchemy, the planner) before its clock starts.
    from benchmarks.scenarios import scale

    if argv[:1] == [scale.SCALE_CHILD]:
        return scale.child_main(argv[1:])
    return cli.main(argv, scenarios())


def scenarios() -> Mapping[str, Scenario]:
    """`--only` names, in the order they run, and how each is called."""
    from benchmarks.scenarios import (
        run_batch,
        run_gallery,
        run_inflight,
        run_memory,
        run_review,
        run_rpm,
        run_scale,
        run_throughput,
    )

    return {
        "throughput": lambda sizes, workdir, o: run_throughput(
            sizes, workdir, peer=o.peer, image_pad=o.image_pad
        ),
        "memory": lambda sizes, workdir, o: run_memory(
            sizes, workdir, peer=o.peer, sim_help=o.sim_help
        ),
        "scale": lambda sizes, workdir, o: run_scale(sizes, workdir, judge=not o.quick),
        "rpm": lambda sizes, workdir, o: run_rpm(sizes, workdir, sim_help=o.sim_help),
        "inflight": lambda sizes, workdir, o: run_inflight(sizes, workdir, peer=o.peer),
        "batch": lambda sizes, workdir, o: run_batch(sizes, workdir),
        "review": lambda sizes, workdir, o: run_review(
            sizes, workdir, peer=o.peer, sim_help=o.sim_help
        ),
        "gallery": lambda sizes, workdir, o: run_gallery(
            sizes, workdir, judge=not o.quick
        ),
    }


if __name__ == "__main__":
    sys.exit(main())
