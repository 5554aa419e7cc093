"""The command line of `python -m benchmarks.bench`: options, `--only`, the header
lines, each chosen scenario run and printed in turn, the targets table, `--json`,
and the exit code (1 when a measured target misses).

Takes the scenarios as a table from the entry point, so that the harness never
imports a scenario. Must not measure anything itself.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from benchmarks.harness.contenders import peer_available
from benchmarks.harness.process import compile_bytecode
from benchmarks.harness.report import machine, render_verdicts, revision
from benchmarks.harness.simulator import SIM_IMAGE_PAD_OPTION, simulator_options
from benchmarks.harness.workload import Sizes

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from benchmarks.harness.report import Section


@dataclass(frozen=True, slots=True)
class Options:
    """What the command line says beyond the sizes, for the scenarios to pick from."""

    peer: bool  # run the google-genai script too
    image_pad: int | None  # throughput: --image-pad-bytes
    sim_help: str  # the simulator's --help, to see which options it has
    quick: bool  # --quick: smaller sizes, scale targets not judged


# A scenario: its sizes, the folder for its files, the options -> its section.
Scenario: TypeAlias = Callable[[Sizes, Path, Options], "Section"]


def main(argv: Sequence[str], scenarios: Mapping[str, Scenario]) -> int:
    """Parse `argv`, run the chosen `scenarios` in table order, print the report."""
    argv = list(argv)
    names = tuple(scenarios)
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench",
        description="Measure the runner against a google-genai script on the "
        "simulated API: throughput, CPU per item, peak RSS, 100k-item scale, rpm, "
        "1,024 in flight.",
        epilog="example: .venv/bin/python -m benchmarks.bench --quick",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller runs of each scenario (full-size targets not judged)",
    )
    parser.add_argument(
        "--only",
        default=",".join(names),
        help=f"comma-separated scenarios out of {', '.join(names)}",
    )
    parser.add_argument("--no-peer", action="store_true", help="runner side only")
    parser.add_argument("--concurrency", type=int, help="throughput concurrency")
    parser.add_argument("--latency", type=float, help="seconds per answer")
    parser.add_argument("--samples", type=int, help="throughput samples per prompt")
    parser.add_argument(
        "--image-scale", type=float, help="throughput: simulator's --image-scale"
    )
    parser.add_argument(
        "--image-pad-bytes",
        type=int,
        metavar="N",
        help="throughput: add N random bytes to each PNG (e.g. 1500000 for "
        "real 1K sizes)",
    )
    parser.add_argument("--workdir", type=Path, help="keep every file here")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; use {', '.join(names)}")

    sizes = Sizes.quick() if args.quick else Sizes()
    overrides = {
        "concurrency": args.concurrency,
        "latency": args.latency,
        "samples": args.samples,
        "image_scale": args.image_scale,
    }
    sizes = Sizes(
        **{**asdict(sizes), **{k: v for k, v in overrides.items() if v is not None}}
    )
    peer = not args.no_peer and peer_available()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="runner-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    sim_help = simulator_options()
    if args.image_pad_bytes and SIM_IMAGE_PAD_OPTION not in sim_help:
        parser.error(f"this simulator has no {SIM_IMAGE_PAD_OPTION}")
    options = Options(
        peer=peer, image_pad=args.image_pad_bytes, sim_help=sim_help, quick=args.quick
    )

    compile_bytecode()
    print(f"machine: {machine()}")
    print(f"runner: {revision()}")
    print(f"command: python -m benchmarks.bench {' '.join(argv)}".rstrip())
    if not peer:
        print(
            "peer: not run"
            + ("" if args.no_peer else " (google-genai is not installed)")
        )
    started = time.monotonic()
    sections: list[Section] = []
    for name in chosen:
        _stderr(f"running {name} ...")
        began = time.monotonic()
        section = scenarios[name](sizes, workdir, options)
        section.lines.append(f"  ({time.monotonic() - began:.0f} s)")
        sections.append(section)
        print(section.render(), flush=True)
    verdicts = [v for s in sections for v in s.verdicts]
    print(render_verdicts(verdicts))
    kept = f"files in {workdir}" if args.workdir else "--workdir DIR keeps the files"
    print(f"wall time {time.monotonic() - started:.0f} s; {kept}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine(),
                    "quick": args.quick,
                    "sections": {s.title.split(":")[0]: s.data for s in sections},
                    "verdicts": [asdict(v) for v in verdicts],
                },
                indent=2,
            ),
            encoding="utf-8",
        )
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if any(v.ok is False for v in verdicts) else 0


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
