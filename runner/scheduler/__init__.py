"""The only owner of concurrency: sends a job's pending items and records every attempt.

The runs layer calls `run_items` with `RunSettings` and gets a `RunResult`, with
`Progress` snapshots on the way. Inside, one concept a module: `run` (the loop),
`pacing`, `budget`, `judgement` (pure), `images`, `references`, `recorder`.
Must not parse YAML, print or exit.
"""

from __future__ import annotations

from runner.scheduler.progress import Progress, ProgressCallback, RunResult
from runner.scheduler.run import run_items
from runner.scheduler.settings import RunSettings

__all__ = ["Progress", "ProgressCallback", "RunResult", "RunSettings", "run_items"]
