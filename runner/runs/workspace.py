"""Where a command's results and store live, and how it names a job.

Owns: `Workspace` (`--output`, `--db`), the check that the output folder can be
made and written (OutputFolderError naming the folder and the fix, before anything
else happens), the job folder, telling a job file from a job name, finding a
stored job by either, and who owns a job name (the file it was made from). Must not
send, run or render.
"""

from __future__ import annotations

import errno
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runner import outputs
from runner.errors import OutputFolderError, UsageError

if TYPE_CHECKING:
    from runner.spec import JobSpec
    from runner.store import JobRow, Store

JOB_FILE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class Workspace:
    """Where results and the store live (`--output`, `--db`)."""

    output_root: Path
    db_url: str | None = None

    def open_store(self) -> Store:
        """The store; without --db it lives in the output folder, checked first."""
        from runner.store import Store

        if not self.db_url:
            self.check_output()
        return Store.for_output(self.output_root, self.db_url)

    def store_to_read(self) -> Store | None:
        """The store for a command that only reads it (`plan`), or None when there
        is none yet (read it as empty): nothing is created, and the output folder
        is only checked as `check_output(create=False)` does."""
        from runner.store.reader import store_file

        path = store_file(self.output_root, self.db_url)
        if path is None or path.exists():  # another database: opening creates none
            return self.open_store()
        if not self.db_url:
            self.check_output(create=False)
        return None

    def check_output(self, *, create: bool = True) -> None:
        """Make the output folder if needed and prove a file can be written in it;
        OutputFolderError, naming the folder and the fix, otherwise. Without
        `create`, a folder not there yet is proved makeable instead (a file can
        be written where it would go); nothing is left behind."""
        root = self.output_root
        named = f"the output folder {root} (--output or RUNNER_OUTPUT)"
        fix = "choose another --output, e.g. --output ./output"
        try:
            if create:
                root.mkdir(parents=True, exist_ok=True)
            elif not root.is_dir():
                parent = _first_existing(root)
                if not parent.is_dir():
                    raise NotADirectoryError(parent)
                _write_probe(parent)
                return
        except (FileExistsError, NotADirectoryError):
            blocker = _first_file(root)
            raise OutputFolderError(
                f"{named} cannot be made: {blocker} is a file, not a folder; {fix}"
            ) from None
        except OSError as exc:
            parent = _first_existing(root)
            raise OutputFolderError(
                f"{named} cannot be made in {parent} ({_why(exc)}); "
                + _advice(exc, "that folder's", fix)
            ) from None
        try:
            _write_probe(root)
        except OSError as exc:
            raise OutputFolderError(
                f"{named} is not writable ({_why(exc)}); {_advice(exc, 'its', fix)}"
            ) from None

    def job_folder(self, name: str) -> Path:
        return outputs.job_dir(self.output_root, name)


def _write_probe(folder: Path) -> None:
    """Create and remove a file in `folder`; OSError if it cannot be. A real write,
    not os.access: root passes access() checks on files it still cannot create
    (read-only mounts answer EROFS, /proc ENOENT)."""
    handle, probe = tempfile.mkstemp(prefix=".runner-write-check-", dir=folder)
    os.close(handle)
    os.unlink(probe)


def _first_existing(path: Path) -> Path:
    """`path` or its nearest ancestor that exists."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return path


def _first_file(path: Path) -> Path:
    """The nearest of `path` and its ancestors that exists and is not a folder."""
    for candidate in reversed((path, *path.parents)):
        if candidate.exists() and not candidate.is_dir():
            return candidate
    return path


def _why(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()


def _advice(exc: OSError, whose: str, fix: str) -> str:
    """Permissions a user can change; a read-only or special file system not."""
    if isinstance(exc, PermissionError) and exc.errno == errno.EACCES:
        return f"fix {whose} permissions (chmod), or {fix}"
    return fix


def is_job_file(job: str) -> bool:
    return job.endswith(JOB_FILE_SUFFIXES) or Path(job).is_file()


def find_job(store: Store, job: str) -> JobRow:
    """A job by name, or by the name a job file declares."""
    from runner.spec import load_job

    name = load_job(job).name if is_job_file(job) else job
    row = store.get_job(name)
    if row is None:
        raise UsageError(
            f"no job named '{name}' in the store {store.url}; `runner list` shows the "
            "jobs there (check --output/--db), or submit the job file first"
        )
    return row


def owner_conflict(job: JobRow | None, spec: JobSpec) -> str | None:
    """The other job file that made the stored job of this spec's name, if that
    file still exists (a job made from a file that is gone is adopted silently)."""
    if job is None or not job.job_path:
        return None
    other = Path(job.job_path)
    if other.absolute() == spec.path.absolute():
        return None
    try:
        if other.resolve() == spec.path.resolve() or not other.is_file():
            return None
    except OSError:
        return None
    return job.job_path


def claim_name(job: JobRow | None, spec: JobSpec, take_over: bool) -> None:
    """UsageError if the job of this name was made from another job file that still
    exists, unless `take_over` (`submit --take-over`)."""
    other = None if take_over else owner_conflict(job, spec)
    if other is not None:
        raise UsageError(
            f"job name '{spec.name}' belongs to a job made from {other}, not "
            f"{spec.path}; give this file another `name:`, or pass --take-over to "
            "make it the job's file (its items then replace that file's)"
        )
