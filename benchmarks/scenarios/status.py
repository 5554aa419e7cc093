"""`runner status` on the 99%-done job (100,000 items, 300,000 attempts):
`runs.read_status` in process (best of three, in the scale child), `runner status
--json` from spawn (median of three) beside the floor of `import runner.cli`, and
the check that the CLI reads the fixture back as it was built. Must not write to
the store.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from benchmarks.harness import Verdict, median_wall, run_logged, runner_cli
from runner import runs

if TYPE_CHECKING:
    from pathlib import Path

TARGET_STATUS_S = 0.2


@dataclass(frozen=True, slots=True)
class StatusCli:
    """Wall seconds of `runner status --json` and of `import runner.cli` alone."""

    status: float
    import_floor: float


def time_in_process(workspace: runs.Workspace, job: str) -> dict[str, float]:
    """In the scale child: `runs.read_status` and its `as_dict`, best of three."""
    store = workspace.open_store()
    timings, renders = [], []
    for _ in range(3):
        started = time.perf_counter()
        report = runs.read_status(store, runs.find_job(store, job))
        middle = time.perf_counter()
        report.as_dict()
        timings.append(time.perf_counter() - started)
        renders.append(time.perf_counter() - middle)
    store.close()
    best = timings.index(min(timings))
    return {"status": timings[best], "status_render": renders[best]}


def fixture_mismatch(out: Path, done: int, attempts: int, log: Path) -> str | None:
    """What `runner status --json` disagrees with in the built fixture, if
    anything."""
    with log.open("ab") as err:
        done_run = run_logged(
            [*runner_cli(), "status", "scale", "--json", "--output", str(out)],
            err,
            capture=True,
        )
    try:
        status = json.loads(done_run.stdout)
        succeeded = int(status["counts"]["succeeded"])
        sent = int(status["requests"]["sent"])
    except (ValueError, KeyError, TypeError):
        return f"`runner status --json` exited {done_run.returncode}; see {log}"
    if succeeded != done or sent != attempts:
        return (
            f"status says {succeeded} succeeded / {sent} requests sent, the fixture "
            f"has {done} / {attempts}"
        )
    return None


def status_cli(out: Path, log: Path) -> StatusCli:
    """`runner status --json` (median of three) and the import floor."""
    floor = median_wall([sys.executable, "-c", "import runner.cli"], repeat=3, log=log)
    status = median_wall(
        [*runner_cli(), "status", "scale", "--json", "--output", str(out)],
        repeat=3,
        log=log,
    )
    return StatusCli(status=status, import_floor=floor)


def lines(built: dict[str, Any], cli: StatusCli) -> list[str]:
    return [
        f"  status in process (read_status, best of 3): {built['status'] * 1000:.0f} ms"
        f" (of which as_dict {built['status_render'] * 1000:.0f} ms)",
        f"  `runner status --json` (median of 3):     {cli.status * 1000:.0f} ms"
        f"   (python -c 'import runner.cli' alone: {cli.import_floor * 1000:.0f} ms)",
    ]


def verdict(
    built: dict[str, Any], cli: StatusCli, *, judged: bool, note: str
) -> Verdict:
    return Verdict(
        f"`runner status` {int(built['items']):,} items / "
        f"{int(built['attempts']):,} attempts",
        f"{cli.status * 1000:.0f} ms",
        "-",
        f"<= {TARGET_STATUS_S * 1000:.0f} ms",
        cli.status <= TARGET_STATUS_S if judged else None,
        note
        or f"CLI wall; runs.read_status in process {built['status'] * 1000:.0f} ms, "
        f"import floor {cli.import_floor * 1000:.0f} ms",
    )
