"""What every run keeps doing beside its work: renewing the job's lease, and turning
Ctrl-C and SIGTERM into a stop (the first) and an abandon (the second); and the
error a run's task groups end with, unwrapped.

Must not decide what a stop means for the run's items: the run loops do.
"""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING

import anyio
from anyio import to_thread

from runner.errors import RunnerError

if TYPE_CHECKING:
    from collections.abc import Callable

    from runner.store import JobRow, Store


async def keep_lease(store: Store, job: JobRow, owner: str, ttl: float) -> None:
    """Renew the job's lease every third of its time to live, until cancelled."""
    while True:
        await anyio.sleep(ttl / 3)
        await to_thread.run_sync(store.renew_lease, job, owner, ttl)


def can_watch_signals(enabled: bool) -> bool:
    """Whether a run may take SIGINT/SIGTERM: asked to, and on the main thread."""
    return enabled and threading.current_thread() is threading.main_thread()


async def watch_signals(
    first: Callable[[], None], second: Callable[[], None], scope: anyio.CancelScope
) -> None:
    """On the first Ctrl-C or SIGTERM call `first` (send nothing new, let what is
    in flight land); on the second call `second`, then cancel `scope`."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        seen = 0
        async for _ in signals:
            seen += 1
            if seen == 1:
                first()
            else:
                second()
                scope.cancel()
                return


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """What a task group raised, unwrapped: a RunnerError (say, the store failed)
    must reach the command line as itself, not as a group with a traceback."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for kind in (KeyboardInterrupt, RunnerError):
        for leaf in leaves:
            if isinstance(leaf, kind):
                return leaf
    return group if len(leaves) != 1 else leaves[0]
