"""Scale: a 100,000-item job planned and stored, made 99% done (300,000 attempts)
through the Store, then `runner status` on it and its resume, in one section.

The scale child (`python -m benchmarks.bench _scale`) plans, stores, builds the
fixture and times `runs.read_status` in process; the rest runs from here against its
store. Owns the order of the measurements and of the printed lines; each figure's
own module (plan_store, status, resume) measures it and words it. Must not move
the resume before the status and plan reads: it changes the store.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.harness import Section, child_command, run_child
from benchmarks.scenarios import plan_store, resume, status
from benchmarks.scenarios.scale_job import build_fixture, write_scale_job
from runner import runs

if TYPE_CHECKING:
    from collections.abc import Sequence

    from benchmarks.harness import Sizes

SCALE_CHILD = "_scale"  # `python -m benchmarks.bench _scale`: child_main
JUDGED_ITEMS = 100_000  # the targets are for this size; smaller runs are not judged


def run_scale(sizes: Sizes, workdir: Path, *, judge: bool = True) -> Section:
    """Plan + store, status and resume on a grid of `sizes.scale_items` items."""
    folder = workdir / "scale"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    out = folder / "out"
    job = write_scale_job(folder, sizes.scale_items)
    log = folder / "scale.log"
    built = run_child(
        child_command(SCALE_CHILD, "--job", str(job), "--out", str(out)), log
    )
    items, attempts = int(built["items"]), int(built["attempts"])
    mismatch = status.fixture_mismatch(out, int(built["done"]), attempts, log)
    status_cli = status.status_cli(out, log)
    plan_cli = plan_store.plan_cli(job, out, log)
    resumed = resume.measure_resume(folder, job, out, log)
    pending = items - int(built["done"])
    section = Section(
        f"scale: a {items:,}-item grid (100 prompts x vars), {attempts:,} attempts, "
        f"{pending:,} items left to send on resume"
    )
    if mismatch:
        section.lines.append(f"  ! the fixture does not read back: {mismatch}")
    section.lines += [
        *plan_store.lines(built),
        *status.lines(built, status_cli),
        plan_store.plan_cli_line(plan_cli),
        *resumed.lines(),
    ]
    full = items >= JUDGED_ITEMS
    judged = judge and full
    note = "" if full else f"{items:,} items: not judged (target is for 100,000)"
    section.verdicts += [
        plan_store.verdict(built, judged=judged, note=note),
        resumed.verdict(judged=judged, note=note),
        status.verdict(built, status_cli, judged=judged, note=note),
    ]
    section.data = {
        **built,
        "status_cli": status_cli.status,
        "import_floor": status_cli.import_floor,
        "plan_cli": plan_cli,
        **resumed.data(),
    }
    return section


def child_main(argv: Sequence[str]) -> int:
    """The scale child: plan and store a big grid, build a 99%-done fixture with 3
    attempts per item, and time `runs.read_status` on it; one JSON line of figures."""
    parser = argparse.ArgumentParser(prog="bench _scale")
    parser.add_argument("--job", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    workspace = runs.Workspace(args.out)
    job, planned = plan_store.plan_and_store(args.job, workspace)

    started = time.perf_counter()
    store = workspace.open_store()
    try:
        done, attempts = build_fixture(store, job)
    finally:
        store.close()
    fixture = time.perf_counter() - started

    print(
        json.dumps(
            {
                "items": planned["items"],
                "done": done,
                "attempts": attempts,
                "phases": planned["phases"],
                "resync": planned["resync"],
                "fixture": fixture,
                **status.time_in_process(workspace, job.name),
            }
        ),
        flush=True,
    )
    return 0
