"""The only owner of concurrency: sends a job's pending items and records every attempt.

The runs layer calls `run_items` with `RunSettings` and gets a `RunResult`, with
`Progress` snapshots on the way; before a run, `recover` records what a stopped
run was paid for but never stored. Inside, one concept a module: `run` (the loop),
`pacing`, `budget`, `disk`, `judgement` (pure), `images`, `references`,
`recorder`, `journal`.
Must not parse YAML, print or exit.
"""

from __future__ import annotations

from runner.scheduler.batches import BatchMode, run_batches
from runner.scheduler.journal import Recovered, recover
from runner.scheduler.progress import Progress, ProgressCallback, RunResult
from runner.scheduler.run import run_items
from runner.scheduler.settings import RunSettings

__all__ = [
    "BatchMode",
    "Progress",
    "ProgressCallback",
    "Recovered",
    "RunResult",
    "RunSettings",
    "recover",
    "run_batches",
    "run_items",
]
