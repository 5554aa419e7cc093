"""The review's worker threads: how many, and the one way work is spread over them.

Owns WORKERS and `parallel`. Thumbnails and contact-sheet pages both go through it,
so one setting bounds what a build holds in memory (one decoded image or one sheet
page per worker). Must not know what the work is.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

# Threads making thumbnails and drawing sheet pages; each holds one decoded image
# or one sheet page in memory at a time.
WORKERS = max(1, min(4, os.cpu_count() or 1))

_T = TypeVar("_T")
_R = TypeVar("_R")


def parallel(task: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    """`task` over `items` on WORKERS threads, results in order. Pillow releases
    the GIL while it decodes and resizes, so those scale; its PNG encoder does not.
    Processes would scale that too, but a spawned child re-runs an unguarded
    `__main__` (a user's script), and forking a threaded process can deadlock."""
    if WORKERS < 2 or len(items) < 2:
        return [task(item) for item in items]
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="review") as pool:
        return list(pool.map(task, items))
