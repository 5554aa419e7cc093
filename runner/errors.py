"""The one exception tree of runner; every class carries its process exit code.

    RunnerError (1)
    ├── UsageError (2)            bad command-line usage, unknown job
    │   └── LiveBatchesError (2)  `runner rm` of a job whose batches still run
    ├── JobSpecError (2)          invalid job file: path, line, what to change
    │   └── JobSpecErrors (2)     several of them, reported at once, one per line
    ├── StoreError (1)            database unreadable, locked or corrupt
    │   ├── StoreFileError (2)    the store's file cannot be opened: fix a path
    │   └── JobBusyError (1)      another live process is running this job
    ├── OutputError (1)           the results folder cannot be written mid-run
    │   ├── OutputFolderError (2) --output cannot be made or written: before a run
    │   └── NoSpaceError (2)      a submit's images would not fit on the disk
    ├── RunStopped (3)            a run-level upstream problem stopped the run
    └── Interrupted (130)         Ctrl-C / SIGTERM; in-flight items left resumable

Core modules raise these; only the CLI turns them into a message and an exit code.
Messages never contain an API key: `client` redacts before any string is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

MAX_SHOWN_PROBLEMS = 20  # problems of one job file listed; the rest are counted


class RunnerError(Exception):
    """Base of every error runner reports to a user."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def as_dict(self) -> dict[str, Any]:
        """The error for `--json`: message, exit code, class name and its fields."""
        return {
            "message": self.message,
            "exit_code": self.exit_code,
            "type": type(self).__name__,
            **self.fields(),
        }

    def fields(self) -> dict[str, Any]:
        """What the error carries beyond its message (JSON values)."""
        return {}


class UsageError(RunnerError):
    exit_code = 2


class LiveBatchesError(UsageError):
    """`runner rm` of a job with live Batch API batches: removing it would leave
    them running and billed, their results never collected (SPEC 7)."""

    def __init__(self, job: str, batches: int, items: int) -> None:
        self.job = job
        self.batches = batches
        self.items = items
        them = "it" if batches == 1 else "them"
        super().__init__(
            f"job '{job}' has {batches} live batch{'es' if batches != 1 else ''} at "
            f"the API ({items} item(s) waiting for results), which would go on, "
            f"billed and never collected; `runner cancel {job}` cancels {them} "
            f"(what finished is collected), or `runner submit` collects {them} "
            "once done; then remove the job"
        )

    def fields(self) -> dict[str, Any]:
        return {"job": self.job, "batches": self.batches, "items": self.items}


class JobSpecError(RunnerError):
    """A job file is invalid; `path` and `line` (1-based) say where."""

    exit_code = 2

    def __init__(
        self, path: Path | str, message: str, *, line: int | None = None
    ) -> None:
        self.path = Path(path)
        self.line = line
        self.problem = message
        where = f"{path} line {line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")

    def fields(self) -> dict[str, Any]:
        return {"path": str(self.path), "line": self.line, "problem": self.problem}


class JobSpecErrors(JobSpecError):
    """Several problems in one job file: `errors` in line order, one line each in
    the message (at most `shown` of them, then how many more)."""

    def __init__(
        self, errors: Sequence[JobSpecError], *, shown: int = MAX_SHOWN_PROBLEMS
    ) -> None:
        self.errors = tuple(errors)
        first = self.errors[0]
        lines = [error.message for error in self.errors[:shown]]
        hidden = len(self.errors) - len(lines)
        if hidden:
            lines.append(
                f"{first.path}: {hidden} more problem{'s' if hidden != 1 else ''} "
                "not shown; fix these first"
            )
        RunnerError.__init__(self, "\n".join(lines))
        self.path, self.line, self.problem = first.path, first.line, first.problem

    def fields(self) -> dict[str, Any]:
        """The first problem's fields, and every problem (none left out)."""
        return {
            **super().fields(),
            "problems": [error.fields() for error in self.errors],
        }


class StoreError(RunnerError):
    exit_code = 1


class StoreFileError(StoreError):
    """The store's file cannot be opened (a folder, not a database, no permission,
    its folder missing): a path to fix before anything runs."""

    exit_code = 2


class OutputError(RunnerError):
    """The results folder cannot be written (disk full, permissions)."""

    exit_code = 1


class NoSpaceError(OutputError):
    """The job folder's disk has less free space than a submit may write."""

    exit_code = 2


class OutputFolderError(OutputError):
    """`--output` cannot be created or written, found before anything is sent."""

    exit_code = 2


class JobBusyError(StoreError):
    """Another live process holds the lease on this job."""

    def __init__(self, job: str, holder: str) -> None:
        self.job = job
        self.holder = holder
        super().__init__(
            f"job '{job}' is being run by another process ({holder}); wait for it "
            "to finish, or stop it, then submit again"
        )

    def fields(self) -> dict[str, Any]:
        return {"job": self.job, "holder": self.holder}


class RunStopped(RunnerError):
    """Further requests were pointless: the key, access, balance, a quota, the
    model, the location or the base URL, or the run's first requests all failed
    the same way (SPEC section 1). The items not answered stay pending."""

    exit_code = 3

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        self.reason = reason
        self.status = status
        super().__init__(reason)

    def fields(self) -> dict[str, Any]:
        return {"reason": self.reason, "status": self.status}


class Interrupted(RunnerError):
    exit_code = 130

    def __init__(self, message: str = "interrupted") -> None:
        super().__init__(message)
