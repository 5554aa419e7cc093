"""Opening a database: the SQLAlchemy engine and, on SQLite, its connection set-up.

Owns: engine creation, the SQLite pragmas (busy timeout, WAL and the retried switch
to it, synchronous, foreign keys), BEGIN IMMEDIATE for write transactions, the
check that a SQLite store's file can be opened at all (a folder, not a database, no
permission: StoreFileError before any connection), and the wording of database
errors (a URL without its password, the reason with advice). Must not know the
tables or run any statement but the set-up's.
"""

from __future__ import annotations

import os
import random
import sqlite3
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError

from runner.errors import StoreFileError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from sqlalchemy.engine import Connection, Engine

DEFAULT_BUSY_TIMEOUT = 15.0  # seconds a writer waits for another process's lock
# The execution option that makes a connection's transactions BEGIN IMMEDIATE.
IMMEDIATE = "runner_begin_immediate"
# The first bytes of every SQLite 3 database file (sqlite.org/fileformat.html 1.3).
SQLITE_HEADER = b"SQLite format 3\x00"


def open_engine(url: str, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Engine:
    """An engine for `url` (no connection yet); StoreError if the URL is unusable."""
    example = "e.g. sqlite:///path/to/runner.db"
    try:
        engine = sa.create_engine(url)
    except sa.exc.ArgumentError:
        raise StoreFileError(
            f"the store URL {safe_url(url)} is not a database URL; fix --db (or "
            f"RUNNER_DB), {example}"
        ) from None
    except SQLAlchemyError as exc:
        raise StoreFileError(
            f"cannot open the store {safe_url(url)}: {db_reason(exc)}; check "
            f"the --db URL (or RUNNER_DB), {example}"
        ) from exc
    except ImportError as exc:
        # SQLAlchemy imports the URL's database driver here (psycopg, pymysql...).
        raise StoreFileError(
            f"the store URL {safe_url(url)} needs the Python package "
            f"'{exc.name or exc}', which is not installed; install it, or use "
            f"{example}"
        ) from None
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            check_store_file(Path(database))
        _sqlite_setup(engine, busy_timeout)
    return engine


def check_store_file(path: Path) -> None:
    """StoreFileError, naming the file and the fix, unless `path` can be opened as
    a SQLite store (or created: its folder exists and can be written)."""
    fix = "or use another --output (or --db)"
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        info = None
    except OSError as exc:
        raise StoreFileError(
            f"the store file {path} cannot be opened ({_why(exc)}); {fix}"
        ) from None
    if info is None:
        folder = path.parent
        if not folder.is_dir():
            raise StoreFileError(
                f"the store file {path} cannot be created: its folder {folder} does "
                f"not exist or is not a folder; create the folder, {fix}"
            )
        if not os.access(folder, os.W_OK | os.X_OK):
            raise StoreFileError(
                f"the store file {path} cannot be created: the folder {folder} is "
                f"not writable; fix its permissions, {fix}"
            )
        return
    if stat.S_ISDIR(info.st_mode):
        raise StoreFileError(
            f"the store file {path} is a folder, not a database; move it aside, {fix}"
        )
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise StoreFileError(
            f"the store file {path} cannot be read ({_why(exc)}); fix its "
            f"permissions, {fix}"
        ) from None
    if header and header != SQLITE_HEADER[: len(header)]:
        raise StoreFileError(
            f"the store file {path} is not a SQLite database (another program's "
            f"file?); move it aside, {fix}"
        )
    # SQLite writes the store and, in WAL mode, its -wal and -shm files beside it.
    for target, what in ((path, "file"), (path.parent, "folder")):
        if not os.access(target, os.W_OK):
            raise StoreFileError(
                f"the store file {path} cannot be written: its {what} is read-only; "
                f"fix the permissions, {fix}"
            )


def safe_url(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return "(unparseable URL)"


def db_reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    reason = str(orig) if orig is not None else type(exc).__name__
    if "locked" in reason or "busy" in reason:
        reason += (
            " (another program holds it locked; wait for it to finish, or use "
            "another --output)"
        )
    elif "not a database" in reason or "malformed" in reason:
        reason += (
            " (the file is damaged or is not a runner store; move it aside and "
            "submit again, or point --output elsewhere)"
        )
    return reason


def _why(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()


def chunks(values: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    """`values` in slices of `size`, for IN lists under the database's limit of
    bound parameters per statement."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _sqlite_setup(engine: Engine, busy_timeout: float) -> None:
    """WAL, and BEGIN IMMEDIATE for write transactions: a deferred transaction that
    reads and then writes fails at once with SQLITE_BUSY in WAL mode when another
    process wrote meanwhile, instead of waiting out busy_timeout."""

    @event.listens_for(engine, "connect")
    def connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        _enter_wal(cursor, busy_timeout)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(IMMEDIATE)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _enter_wal(cursor: Any, busy_timeout: float) -> None:
    """Switch a new database to WAL. Processes opening the same blank file at once
    race for the switch, and SQLite may answer "database is locked" at once rather
    than wait (a busy handler there could deadlock): try again until busy_timeout."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01 + random.random() * 0.04)
