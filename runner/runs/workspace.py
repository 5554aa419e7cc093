"""Where a command's results and store live, and how it names a job.

Owns: `Workspace` (`--output`, `--db`), the job folder, telling a job file from a
job name, finding a stored job by either, and who owns a job name (the file it was
made from). Must not send, run or render.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runner import outputs
from runner.errors import UsageError

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
        from runner.store import Store

        return Store.for_output(self.output_root, self.db_url)

    def job_folder(self, name: str) -> Path:
        return outputs.job_dir(self.output_root, name)


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
