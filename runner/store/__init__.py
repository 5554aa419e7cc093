"""The SQLite store: jobs, items, attempts, runs and their running totals.

The package's names, importable from here. Importing this package must not import
SQLAlchemy: `runner status` reads through `reader` and `records` (stdlib sqlite3)
and starts several times faster without it. So the light names are imported here
and the SQLAlchemy-backed ones (`Store`, the attempt records) only when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from runner.store import reader
from runner.store.records import (
    BATCH_COLUMNS,
    COUNTER_COLUMNS,
    KEEP,
    MARKS,
    POSSIBLY_PAID,
    STATUSES,
    STORE_FILE,
    TOKEN_COLUMNS,
    BatchRow,
    JobRow,
    JobSummary,
    Keep,
    Mark,
    RecordedUsage,
    Spend,
    Status,
    UsageKey,
)

if TYPE_CHECKING:
    from runner.store.attempts import (
        AttemptEnd,
        AttemptRecord,
        AttemptResult,
        AttemptStart,
        WorkItem,
    )
    from runner.store.facade import Store
    from runner.store.leases import OpenAttempt
    from runner.store.marks import ItemImages
    from runner.store.parents import ChildItem, ParentImage
    from runner.store.removal import Removed
    from runner.store.sync import SyncResult

__all__ = [
    "BATCH_COLUMNS",
    "COUNTER_COLUMNS",
    "KEEP",
    "MARKS",
    "POSSIBLY_PAID",
    "STATUSES",
    "STORE_FILE",
    "TOKEN_COLUMNS",
    "AttemptEnd",
    "AttemptRecord",
    "AttemptResult",
    "AttemptStart",
    "BatchRow",
    "ChildItem",
    "ItemImages",
    "JobRow",
    "JobSummary",
    "Keep",
    "Mark",
    "OpenAttempt",
    "ParentImage",
    "RecordedUsage",
    "Removed",
    "Spend",
    "Status",
    "Store",
    "SyncResult",
    "UsageKey",
    "WorkItem",
    "reader",
]

# name -> the module that defines it; imported on first use (see the docstring).
_LAZY = {
    "AttemptEnd": "runner.store.attempts",
    "AttemptRecord": "runner.store.attempts",
    "AttemptResult": "runner.store.attempts",
    "AttemptStart": "runner.store.attempts",
    "ChildItem": "runner.store.parents",
    "ItemImages": "runner.store.marks",
    "OpenAttempt": "runner.store.leases",
    "ParentImage": "runner.store.parents",
    "Removed": "runner.store.removal",
    "Store": "runner.store.facade",
    "SyncResult": "runner.store.sync",
    "WorkItem": "runner.store.attempts",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
