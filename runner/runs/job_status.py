"""A job's status, priced: read straight from the SQLite file when that can answer,
through the store otherwise.

Owns: the choice between the fast reader (sqlite3 only, for `runner status`) and
the full store, and pricing the spend with the job's own price. Imports neither
SQLAlchemy nor the sending side at module level. Must not write.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.reports import StatusReport
from runner.runs.settings import stored_batch_price, stored_price
from runner.runs.workspace import is_job_file
from runner.store import reader

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runner.runs.workspace import Workspace
    from runner.store import JobRow, Store


def read_status(store: Store, job: JobRow, by: Sequence[str] = ()) -> StatusReport:
    """Counts, usage, requests and spend, in total and per value of each axis in
    `by` (prompt, aspect_ratio, image_size, references)."""
    return StatusReport(
        store.status(job, by), stored_price(job), stored_batch_price(job)
    )


def quick_status(workspace: Workspace, job: str) -> StatusReport | None:
    """`read_status` of the job named `job` (no `by`), read from the SQLite file
    without SQLAlchemy; None wherever that does not apply (another database, a job
    file, a missing file or job, another schema): then open the store and call
    `read_status`, which also says what is wrong."""
    path = reader.store_file(workspace.output_root, workspace.db_url)
    if path is None or is_job_file(job):
        return None
    try:
        with reader.StoreReader(path) as store:
            row = store.job(job)
            return (
                None
                if row is None
                else StatusReport(
                    store.status(row), stored_price(row), stored_batch_price(row)
                )
            )
    except reader.Unreadable:
        return None
