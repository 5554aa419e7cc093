"""What every run loop shares: what it works on, its stop (and why it stopped), the
two Ctrl-C steps, and its progress snapshots handed to a callback.

`RunControl` is the base of the interactive run (`run`) and the Batch API run
(`batches`). Must not send, record or decide what an answer means.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from runner.scheduler.progress import Progress
from runner.scheduler.watch import can_watch_signals, keep_lease, watch_signals

if TYPE_CHECKING:
    from pathlib import Path

    import httpx

    from runner import client
    from runner.scheduler.progress import ProgressCallback
    from runner.scheduler.settings import RunSettings
    from runner.store import JobRow, Store


@dataclass(frozen=True, slots=True)
class RunPlace:
    """What a run works on: the store and job, its run record, where it sends and
    where the job's files go, and its settings."""

    store: Store
    job: JobRow
    run_id: int
    http: httpx.AsyncClient
    endpoint: client.Endpoint
    job_folder: Path
    settings: RunSettings


class RunControl:
    """A run's stop, its Ctrl-C steps and its progress."""

    def __init__(self, place: RunPlace, on_progress: ProgressCallback | None) -> None:
        self.store = place.store
        self.job = place.job
        self.run_id = place.run_id
        self.http = place.http
        self.endpoint = place.endpoint
        self.job_folder = place.job_folder
        self.settings = place.settings
        self.on_progress = on_progress
        self.stop = anyio.Event()
        self.stop_reason: str | None = None  # a run-level problem: exit 3
        self.stop_status: int | None = None
        self.interrupted = False
        self.started = time.monotonic()
        self.progress = Progress(total=0)

    def watch(self, tg: anyio.abc.TaskGroup, lease_owner: str) -> None:
        """Start the background tasks every run has in `tg`: the lease renewal, and
        Ctrl-C/SIGTERM (where signals can be taken; the second cancels `tg`)."""
        tg.start_soon(
            keep_lease, self.store, self.job, lease_owner, self.settings.lease_ttl
        )
        if can_watch_signals(self.settings.handle_signals):
            tg.start_soon(
                watch_signals, self.first_signal, self.second_signal, tg.cancel_scope
            )

    def first_signal(self) -> None:
        # Nothing new is started; what is already out (paid for) may land.
        self.interrupted = True
        self.progress = replace(self.progress, interrupts=1)
        self._halt("interrupted")

    def second_signal(self) -> None:
        # Stop waiting for it (what is abandoned is the loop's to record).
        self.progress = replace(self.progress, interrupts=2)
        self.emit()

    def _halt(self, reason: str, status: int | None = None) -> None:
        if self.stop_reason is None and not self.interrupted:
            self.stop_reason = reason
            self.stop_status = status
        self._stop_dispatching(reason)

    def _stop_dispatching(self, reason: str) -> None:
        self.stop.set()
        self.progress = replace(self.progress, stopping=reason)
        self.emit()

    def _bump(self, **deltas: int) -> None:
        """Add to the progress counters (and refresh what `_progress_fields` says),
        then hand the snapshot on."""
        p = self.progress
        self.progress = replace(
            p,
            **{name: getattr(p, name) + d for name, d in deltas.items()},
            **self._progress_fields(),
            elapsed=time.monotonic() - self.started,
        )
        self.emit()

    def _progress_fields(self) -> dict[str, Any]:
        """Progress fields each loop sets from its own state at every update."""
        return {}

    def emit(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress)
