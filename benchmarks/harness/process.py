"""Child processes of the benchmark: started from the repository with a clean
environment, stderr appended to a log, run to their end within a timeout.

Owns: how a child is spawned, how its figures (its last stdout line, a JSON object)
are read back, and the median wall time of a command. Must not know what a child
measures or how a scenario judges it.
"""

from __future__ import annotations

import compileall
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

REPO = Path(__file__).resolve().parents[2]
# The entry point every benchmark child runs through (`python -m benchmarks.bench
# _runner ...`), also the one BENCHMARKS.md profiles with py-spy.
ENTRY_MODULE = "benchmarks.bench"
CHILD_TIMEOUT = 600.0

_KEY_VARIABLES = ("TOKAIFY_API_KEY", "GEMINI_API_KEY")


class BenchError(Exception):
    """A benchmark step that could not run (a child failed, a server did not start)."""


def child_command(name: str, *args: str) -> list[str]:
    """`python -m benchmarks.bench <name> <args>`: one of the entry point's children."""
    return [sys.executable, "-m", ENTRY_MODULE, name, *args]


def runner_cli() -> list[str]:
    """`python -m runner`, as a user runs the CLI."""
    return [sys.executable, "-m", "runner"]


def compile_bytecode() -> None:
    """Write the runner's and the benchmark's bytecode, as `pip install` does for
    an installed package: where PYTHONDONTWRITEBYTECODE is set (this machine sets
    it), the modules changed since their .pyc was written would otherwise be
    compiled again by every process the benchmark spawns, which no user's run
    pays (`runner status --json` at 100,000 items: 0.21 s, then 0.16 s once
    compiled, measured here)."""
    for package in ("runner", "benchmarks"):
        compileall.compile_dir(REPO / package, quiet=1)


def clean_env() -> dict[str, str]:
    """This environment without the runner's settings and API keys."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RUNNER_") and k not in _KEY_VARIABLES
    }


def run_logged(
    command: Sequence[str],
    err: IO[bytes],
    *,
    capture: bool,
    timeout: float = CHILD_TIMEOUT,
) -> subprocess.CompletedProcess[bytes]:
    """Run `command` to its end, stderr to `err`; stdout kept only if `capture`."""
    return subprocess.run(
        command,
        cwd=REPO,
        env=clean_env(),
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=err,
        timeout=timeout,
        check=False,
    )


def run_child(command: list[str], log: Path) -> dict[str, Any]:
    """Run a child to its end; its last stdout line is a JSON object of figures."""
    with log.open("ab") as err:
        done = run_logged(command, err, capture=True)
    lines = done.stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        report = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = log.read_text("utf-8", "replace")[-2000:]
        raise BenchError(
            f"{Path(command[1]).name} {command[2]} exited {done.returncode} without "
            f"figures; log {log}:\n{tail}"
        ) from None
    if not isinstance(report, dict):
        raise BenchError(f"{command[:3]} printed {lines[-1]!r}")
    return report


def median_wall(command: list[str], *, repeat: int, log: Path) -> float:
    """Median wall seconds of `repeat` runs of `command` (exit 0 or 1)."""
    walls = []
    with log.open("ab") as err:
        for _ in range(repeat):
            started = time.monotonic()
            done = run_logged(command, err, capture=False)
            walls.append(time.monotonic() - started)
            if done.returncode not in (0, 1):
                raise BenchError(f"{command[2:4]} exited {done.returncode}; see {log}")
    return statistics.median(walls)
