"""Read a job's status straight from a SQLite store file, without SQLAlchemy.

Owns: opening an existing store file for reading (stdlib sqlite3), checking that its
schema is exactly the one this runner writes, and running records' SQL. Importing
SQLAlchemy costs more than the status queries themselves, so `runner status` reads
through here; on any doubt it raises `Unreadable` and the caller opens the full
`Store`, which says what is wrong. Must not create, migrate or write to the store.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.store.records import (
    JOB_NAMES_SQL,
    MIGRATION_NAMES,
    MIGRATIONS_SQL,
    STORE_FILE,
    JobRow,
    Status,
    read_job,
    read_status,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import TracebackType

# Seconds to wait for a lock. A reader of a WAL store waits only while a database
# is recovered or its journal mode changes; past this, the full Store takes over
# (and waits its own busy timeout before it reports a locked store).
READ_BUSY_TIMEOUT = 2.0


def store_file(output_root: Path, db_url: str | None) -> Path | None:
    """The SQLite file `Store.for_output` would open, or None when `db_url` is not a
    plain `sqlite:///PATH` URL (another database, in memory, options, %-escapes)."""
    if not db_url:
        return output_root / STORE_FILE
    path = db_url.removeprefix("sqlite:///")
    if path == db_url or path in ("", ":memory:") or "?" in path or "%" in path:
        return None
    return Path(path)


class Unreadable(Exception):
    """This reader cannot answer for the store: use the full Store instead.

    Never shown to a user (not a RunnerError): the Store path reports the problem.
    """


class StoreReader:
    """A read-only view of one existing SQLite store file with the current schema."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise Unreadable(f"{path} is not a file")
        try:
            # mode=rw: never create the file. Not mode=ro: a reader of a WAL
            # database may need to create its -shm and -wal files.
            self._conn = sqlite3.connect(
                f"{path.absolute().as_uri()}?mode=rw",
                uri=True,
                timeout=READ_BUSY_TIMEOUT,
                isolation_level=None,
            )
        except sqlite3.Error as exc:
            raise Unreadable(str(exc)) from exc
        try:
            self._rows("PRAGMA query_only = ON", {})
            names = tuple(name for (name,) in self._rows(MIGRATIONS_SQL, {}))
            if names != MIGRATION_NAMES:
                raise Unreadable(f"schema steps {names}, not {MIGRATION_NAMES}")
        except BaseException:
            self._conn.close()
            raise

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def job(self, name: str) -> JobRow | None:
        return read_job(self._rows, name)

    def job_names(self) -> list[str]:
        """Every job's name, in order (for shell completion)."""
        return [str(name) for (name,) in self._rows(JOB_NAMES_SQL, {})]

    def status(self, job: JobRow) -> Status:
        """Counts, spend and failures of a job, from one snapshot of the store."""
        try:
            self._conn.execute("BEGIN")
            try:
                return read_status(self._rows, job)
            finally:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise Unreadable(str(exc)) from exc

    def _rows(self, sql: str, params: Mapping[str, Any]) -> list[Sequence[Any]]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise Unreadable(str(exc)) from exc
