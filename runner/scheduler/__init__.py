"""The only owner of concurrency: sends a job's pending items and records every attempt.

The runs layer calls `run_items` with `RunSettings` and gets a `RunResult`; the
modules below hold one concept each. Must not parse YAML, print or exit.
"""

from __future__ import annotations

from runner.scheduler.run import (
    Progress,
    ProgressCallback,
    RunResult,
    RunSettings,
    run_items,
)

__all__ = ["Progress", "ProgressCallback", "RunResult", "RunSettings", "run_items"]
