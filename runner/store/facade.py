"""`Store`: one database, opened with migrations applied; the store's whole API.

Owns: the engine and the transactions (one writer at a time in this process, BEGIN
IMMEDIATE across processes; database errors become StoreError), and hands each
call to the module that owns its concept: `sync`, `leases`, `attempts`, `queries`,
`marks`, `removal`.
Synchronous; the scheduler calls it from worker threads. Must not know HTTP, YAML
or file formats, and never sees the API key.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError

from runner.errors import StoreError
from runner.store import (
    attempts,
    batches,
    leases,
    marks,
    parents,
    queries,
    removal,
    sync,
)
from runner.store.attempts import AttemptEnd, AttemptStart
from runner.store.engine import (
    DEFAULT_BUSY_TIMEOUT,
    IMMEDIATE,
    db_reason,
    open_engine,
    safe_url,
)
from runner.store.leases import DEFAULT_LEASE_TTL
from runner.store.migrations import migrate
from runner.store.records import STORE_FILE

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
    from pathlib import Path

    from sqlalchemy.engine import Connection, Engine

    from runner.plan import Item
    from runner.store import JobRow, JobSummary, RecordedUsage, Spend, Status, UsageKey
    from runner.store.attempts import AttemptResult, Change, WorkItem
    from runner.store.leases import OpenAttempt
    from runner.store.marks import ItemImages
    from runner.store.parents import ChildItem, ParentImage
    from runner.store.records import BatchRow, Keep, Mark
    from runner.store.removal import Removed
    from runner.store.sync import SyncResult


class Store:
    """One database, opened with migrations applied."""

    def __init__(self, url: str, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self.url = url
        self._lock = threading.RLock()
        self.engine: Engine = open_engine(url, busy_timeout)
        try:
            migrate(self._begin, url)
        except BaseException:
            self.engine.dispose()
            raise

    @classmethod
    def for_output(cls, output_dir: Path, db_url: str | None = None) -> Store:
        """`db_url`, or `<output_dir>/runner.db` (SQLite, WAL)."""
        if db_url:
            return cls(db_url)
        output_dir.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{output_dir / STORE_FILE}")

    def close(self) -> None:
        self.engine.dispose()

    # -- jobs -------------------------------------------------------------------------

    def upsert_job(
        self,
        name: str,
        job_path: str | None,
        model: str | None,
        settings: Mapping[str, Any] | None = None,
    ) -> JobRow:
        """Create or refresh a job; `settings` are the run settings `retry` reuses."""
        with self._begin() as conn:
            return sync.upsert_job(conn, name, job_path, model, settings)

    def get_job(self, name: str) -> JobRow | None:
        with self._connect() as conn:
            return queries.get_job(conn, name)

    def list_jobs(self) -> list[JobSummary]:
        with self._connect() as conn:
            return queries.list_jobs(conn)

    def remove_job(self, job: JobRow) -> Removed:
        """Delete a job and everything the store holds of it (JobBusyError while a
        live process runs it, LiveBatchesError while it has live batches); the
        image files its rows named."""
        with self._begin() as conn:
            return removal.remove_job(conn, job)

    def check_removable(self, job: JobRow) -> None:
        """LiveBatchesError if `remove_job` would refuse the job for its live
        batches (asked before the user is)."""
        with self._begin() as conn:
            removal.check_no_live_batches(conn, job)

    def prune_stale(self, job: JobRow) -> Removed:
        """Delete the items the job file no longer has, with their attempts (their
        cost stays in the job's totals); the image files they named."""
        with self._begin() as conn:
            return removal.prune_stale(conn, job)

    # -- lease: one live process per job --------------------------------------------

    def acquire_lease(
        self, job: JobRow, owner: str, ttl: float = DEFAULT_LEASE_TTL
    ) -> None:
        """Take the job's lease, or raise JobBusyError if a live process holds it.

        A lease whose process is gone (same host, pid not alive) or whose time ran out
        is taken over at once, so a crash never blocks the next run.
        """
        with self._begin() as conn:
            leases.acquire_lease(conn, job, owner, ttl)

    def renew_lease(
        self, job: JobRow, owner: str, ttl: float = DEFAULT_LEASE_TTL
    ) -> None:
        with self._begin() as conn:
            leases.renew_lease(conn, job, owner, ttl)

    def release_lease(self, job: JobRow, owner: str) -> None:
        with self._begin() as conn:
            leases.release_lease(conn, job, owner)

    # -- plan -------------------------------------------------------------------------

    def sync_plan(
        self, job: JobRow, plan_items: Sequence[Item], digest: str | None = None
    ) -> SyncResult:
        """Insert new items, refresh labels of known ones, deactivate dropped ones,
        and remember the plan's digest.

        Keys are content hashes, so an item already succeeded stays succeeded.
        """
        with self._begin() as conn:
            return sync.sync_plan(conn, job, plan_items, digest)

    def plan_digest(self, job: JobRow) -> str | None:
        """The digest of the plan last stored for this job."""
        with self._connect() as conn:
            return sync.plan_digest(conn, job)

    def unfinished(
        self, job: JobRow, statuses: Sequence[str] = ("pending", "running")
    ) -> list[tuple[str, int, str | None]]:
        """(prompt, reference count, image size) of each item still to send: the
        active items with these statuses."""
        with self._connect() as conn:
            return sync.unfinished(conn, job, statuses)

    def item_count(self, job: JobRow) -> int:
        """Items stored for the job, active or not."""
        with self._connect() as conn:
            return sync.item_count(conn, job)

    def stale_count(self, job: JobRow) -> int:
        """Stored items the job's last synced plan no longer has."""
        with self._connect() as conn:
            return sync.item_count(conn, job, active=False)

    def statuses_of(self, job: JobRow, keys: Iterable[str]) -> dict[str, str]:
        """key -> status of the given keys the store already has."""
        with self._connect() as conn:
            return sync.statuses_of(conn, job, keys)

    # -- runs and dispatch -----------------------------------------------------------

    def start_run(self, job: JobRow, command: str, simulated: bool = False) -> int:
        """A new run; `simulated` (--simulate): its attempts add to no totals and its
        successes leave their items `simulated` (SPEC 5)."""
        with self._begin() as conn:
            return leases.start_run(conn, job, command, simulated)

    def end_run(self, run_id: int, result: str) -> None:
        with self._begin() as conn:
            leases.end_run(conn, run_id, result)

    def recover_abandoned(self, job: JobRow) -> int:
        """Items a dead run left `running` become pending; their open attempts are
        closed as `abandoned` (the request may have been sent and billed). Call only
        while holding the job's lease."""
        with self._begin() as conn:
            return leases.recover_abandoned(conn, job)

    def open_attempts(self, job: JobRow) -> list[OpenAttempt]:
        """Attempts of `running` items never ended: what a stopped run left open
        (its journal and image files may say how they ended)."""
        with self._connect() as conn:
            return leases.open_attempts(conn, job)

    def requeue(self, job: JobRow, statuses: Sequence[str]) -> int:
        """Put items with these statuses back to pending, with fresh tries."""
        with self._begin() as conn:
            return attempts.requeue(conn, job, statuses)

    def requeue_simulated(self, job: JobRow) -> dict[int, list[str]]:
        """Put simulated successes back to pending for a real run; item id -> the
        simulated images, left on disk until a real answer replaces them. Marks on
        those images go: a real answer is another picture."""
        with self._begin() as conn:
            requeued = attempts.requeue_simulated(conn, job)
            marks.drop_marks(conn, requeued)
            return requeued

    def outputs_of(
        self, job: JobRow, item_ids: Sequence[int]
    ) -> dict[int, tuple[str, list[str]]]:
        """item id -> (status, outputs) of these items."""
        with self._connect() as conn:
            return attempts.outputs_of(conn, job, item_ids)

    def pending_items(self, job: JobRow) -> list[WorkItem]:
        with self._connect() as conn:
            return attempts.pending_items(conn, job)

    def begin_attempt(self, item_id: int, run_id: int, number: int) -> int:
        """Record that a request is about to go out; the item becomes `running`."""
        attempt_id = self.record_attempts([AttemptStart(item_id, run_id, number)])[0]
        assert attempt_id is not None
        return attempt_id

    def finish_attempt(
        self, attempt_id: int, item_id: int, result: AttemptResult
    ) -> None:
        """Close an attempt, move its item and add to the job's totals, in one
        transaction."""
        self.record_attempts([AttemptEnd(attempt_id, item_id, result)])

    def record_attempts(self, changes: Sequence[Change]) -> list[int | None]:
        """Begin and finish attempts, in order, in one transaction; the new
        attempt's id for each AttemptStart (None for an AttemptEnd), and for each
        AttemptRecord recorded (None if its item is no longer in its batch).

        A run sends its changes in batches: one transaction for many attempts
        costs little more than one for a single attempt. (Statements are built once,
        at import: building them per call cost more CPU than running them.)"""
        with self._begin() as conn:
            return attempts.record_attempts(conn, changes)

    def rebuild_totals(self, job: JobRow) -> None:
        """Recompute the job's running totals from its ended attempts, by the same
        rule `record_attempts` keeps them with: for a store whose attempts were
        written another way (a bulk-loaded fixture), or a new totals column."""
        with self._begin() as conn:
            attempts.rebuild_totals(conn, job)

    # -- Batch API batches (SPEC 7) ---------------------------------------------------

    def record_batch(
        self,
        job: JobRow,
        run_id: int,
        item_ids: Sequence[int],
        *,
        model: str,
        input_kind: str,
        simulated: bool = False,
    ) -> BatchRow:
        """Record a batch before it is created: its pending items become
        `in_batch` in it, and its display name is fixed (found again after a
        crash)."""
        with self._begin() as conn:
            return batches.record_batch(
                conn,
                job,
                run_id,
                item_ids,
                model=model,
                input_kind=input_kind,
                simulated=simulated,
            )

    def live_batches(self, job: JobRow) -> list[BatchRow]:
        """The job's batches not closed yet, oldest first."""
        with self._connect() as conn:
            return batches.live_batches(conn, job)

    def get_batch(self, batch_id: int) -> BatchRow | None:
        with self._connect() as conn:
            return batches.get_batch(conn, batch_id)

    def update_batch(self, batch_id: int, **fields: Any) -> None:
        """Set what the API said of a batch (remote_name, state, requests,
        succeeded, failed, pending, input_file, result_file)."""
        with self._begin() as conn:
            batches.update_batch(conn, batch_id, **fields)

    def batch_items(
        self, batch_id: int, *, waiting: bool = False
    ) -> list[tuple[WorkItem, bool]]:
        """The batch's items in input order, each with whether it still waits for
        its result; with `waiting`, only those."""
        with self._connect() as conn:
            return batches.batch_items(conn, batch_id, waiting=waiting)

    def close_batch(self, batch_id: int, *, error: str | None = None) -> int:
        """Close a batch; the items it still holds go back to pending (how many)."""
        with self._begin() as conn:
            return batches.close_batch(conn, batch_id, error=error)

    # -- reading ----------------------------------------------------------------------

    def status(self, job: JobRow, by: Sequence[str] = ()) -> Status:
        """Counts, usage and spend of a job; also grouped by each axis in `by`
        (that part sums every attempt, so it is only done when asked)."""
        with self._connect() as conn:
            return queries.status(conn, job, by)

    def counts(self, job: JobRow) -> dict[str, int]:
        """The job's active items per status (every status present): the first
        part of `status`, alone."""
        with self._connect() as conn:
            return queries.counts(conn, job)

    def spend(self, job: JobRow) -> Spend:
        """What the job's attempts used so far (every run, every item)."""
        with self._connect() as conn:
            return queries.spend(conn, job)

    def recorded_usage(self, job: JobRow) -> dict[UsageKey, RecordedUsage]:
        """What the job's billed answers used, per (model, image size, reference
        count): the sums behind learned estimates, the heaviest answer for caps."""
        with self._connect() as conn:
            return queries.recorded_usage(conn, job)

    def manifest_rows(
        self, job: JobRow, item_ids: Collection[int] | None = None
    ) -> list[dict[str, Any]]:
        """One dict per active item, in plan order, with the SPEC manifest fields
        (with `item_ids`, for those items only)."""
        with self._connect() as conn:
            return queries.manifest_rows(conn, job, item_ids)

    def parent_images(
        self,
        job: JobRow,
        marked: str | Sequence[str],
        statuses: Sequence[str] = ("succeeded",),
    ) -> list[ParentImage]:
        """The images of `job` a derived job's `from: marked:` selects (SPEC 6):
        "succeeded", "star", or image file names and item-key prefixes."""
        with self._connect() as conn:
            return parents.parent_images(conn, job, marked, statuses)

    def children_of(self, job: JobRow) -> list[ChildItem]:
        """The current items of other jobs derived from images of `job` (SPEC 6:
        the gallery links a parent to its children)."""
        with self._connect() as conn:
            return parents.children_of(conn, job)

    def reference_sets(self, job: JobRow) -> dict[str, list[dict[str, Any]]]:
        """Reference set label -> its files (path as written, abs_path, sha256)."""
        with self._connect() as conn:
            return queries.reference_sets(conn, job)

    def attempt_rows(self, job: JobRow) -> list[dict[str, Any]]:
        with self._connect() as conn:
            return queries.attempt_rows(conn, job)

    def attempt_usage(
        self, job: JobRow, item_ids: Collection[int] | None = None
    ) -> list[dict[str, Any]]:
        """The key, total_tokens and usage_json of every attempt with usage (with
        `item_ids`, of those items only)."""
        with self._connect() as conn:
            return queries.attempt_usage(conn, job, item_ids)

    def item_requests(
        self, job: JobRow, keys: Iterable[str]
    ) -> dict[str, dict[str, Any]]:
        """item key -> the request (as stored, references with paths and hashes)
        of these keys of the job."""
        with self._connect() as conn:
            return queries.item_requests(conn, job, keys)

    # -- marks (SPEC 6) ---------------------------------------------------------------

    def images_of(self, job: JobRow) -> list[ItemImages]:
        """The job's items that have images: the active ones in plan order, then
        the stale ones."""
        with self._connect() as conn:
            return marks.images_of(conn, job)

    def set_marks(
        self,
        job: JobRow,
        targets: Sequence[tuple[int, str]],
        mark: str | None | Keep,
        note: str | None | Keep,
    ) -> list[Mark]:
        """Set the mark and note of each (item id, image) in one transaction: None
        clears one, KEEP leaves it; the marks as they are now, in order."""
        with self._begin() as conn:
            return marks.set_marks(conn, job, targets, mark, note)

    def marks(
        self, job: JobRow, which: Iterable[str | None] | None = None
    ) -> list[Mark]:
        """Marks on the images of the job's active items, in plan order; only the
        marks in `which` (None: a note only) when given."""
        with self._connect() as conn:
            return marks.job_marks(conn, job, which)

    def kept_stale(self, job: JobRow) -> tuple[int, int]:
        """Stale items that `prune_stale` keeps: (an image of theirs is marked,
        waiting in a live batch and not marked)."""
        with self._connect() as conn:
            return removal.kept_stale(conn, job)

    # -- plumbing ---------------------------------------------------------------------

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        # One writer at a time inside this process; across processes SQLite
        # serialises writers with BEGIN IMMEDIATE and busy_timeout.
        with self._lock:
            try:
                with (
                    self.engine.connect().execution_options(
                        **{IMMEDIATE: True}
                    ) as conn,
                    conn.begin(),
                ):
                    yield conn
            except DBAPIError as exc:
                raise StoreError(
                    f"the store {safe_url(self.url)} failed: {db_reason(exc)}"
                ) from exc

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except DBAPIError as exc:
            raise StoreError(
                f"the store {safe_url(self.url)} failed: {db_reason(exc)}"
            ) from exc
