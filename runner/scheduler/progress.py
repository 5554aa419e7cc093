"""What a run reports: `Progress` snapshots handed to a callback while it runs, and
the `RunResult` it ends with (why it stopped, if it did).

Frozen values only. Must not print or render them: the CLI does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """One Batch API batch of a run (SPEC 7), as last seen."""

    name: str  # its display name
    state: str  # BATCH_STATE_*; "" while it is being created
    requests: int  # its items
    done: int = 0  # its requests the API has answered


@dataclass(frozen=True, slots=True)
class Progress:
    total: int
    succeeded: int = 0
    failed: int = 0
    blocked: int = 0
    # Requests in flight: sent, answer not in yet. Never above `concurrency` (nor
    # above `limit`, but for the requests already out when a 429 lowered it).
    running: int = 0
    saving: int = 0  # answers in, being written (images, then the store)
    requests: int = 0
    retries: int = 0
    tokens: int = 0
    limit: int = 0  # current concurrency limit (lowered after 429s)
    concurrency: int = 0  # the configured limit
    elapsed: float = 0.0
    stopping: str | None = None  # why dispatching stopped, if it did
    interrupts: int = 0  # Ctrl-C/SIGTERM seen: 1 lets requests land, 2 abandons them
    # Batch API runs (SPEC 7): the run's batches, newest last; items in them wait
    # (counted in `running` while their batch is live).
    batches: tuple[BatchProgress, ...] = ()

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.blocked

    @property
    def pending(self) -> int:
        return self.total - self.finished - self.running - self.saving


@dataclass(frozen=True, slots=True)
class RunResult:
    progress: Progress
    stopped: str | None = None  # why a run-level problem stopped it (exit 3)
    stopped_status: int | None = None
    interrupted: bool = False
    abandoned: int = 0  # requests in flight a second Ctrl-C gave up waiting for
    budget_stop: str | None = None  # which budget cap stopped dispatching
    # Batch API runs: live batches left when the run ended (they go on at the API:
    # a later submit collects them), and whether it returned once they existed.
    batches_left: int = 0
    detached: bool = False


ProgressCallback = Callable[[Progress], None]
