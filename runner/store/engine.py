"""Opening a database: the SQLAlchemy engine and, on SQLite, its connection set-up.

Owns: engine creation, the SQLite pragmas (busy timeout, WAL and the retried switch
to it, synchronous, foreign keys), BEGIN IMMEDIATE for write transactions, and the
wording of database errors (a URL without its password, the reason with advice).
Must not know the tables or run any statement but the set-up's.
"""

from __future__ import annotations

import random
import sqlite3
import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError

from runner.errors import StoreError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from sqlalchemy.engine import Connection, Engine

DEFAULT_BUSY_TIMEOUT = 15.0  # seconds a writer waits for another process's lock
# The execution option that makes a connection's transactions BEGIN IMMEDIATE.
IMMEDIATE = "runner_begin_immediate"


def open_engine(url: str, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Engine:
    """An engine for `url` (no connection yet); StoreError if the URL is unusable."""
    try:
        engine = sa.create_engine(url)
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot open the store {safe_url(url)}: {db_reason(exc)}; check "
            "the --db URL"
        ) from exc
    if engine.dialect.name == "sqlite":
        _sqlite_setup(engine, busy_timeout)
    return engine


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
