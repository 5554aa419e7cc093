"""The schema's numbered steps, applied in order and recorded in `_runner_migrations`.

Owns: each step's DDL, written out literally so that a step means the same thing on
a blank store and on one made by any earlier release (never `create_all` on
today's tables: once m002 adds a column, m001 would already have it), and the
bookkeeping that applies each step once. Must not read or write jobs' data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from runner.errors import StoreError
from runner.store.engine import safe_url
from runner.store.records import BATCH_COLUMNS, MIGRATION_NAMES
from runner.store.schema import migrations_table, timestamp

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from contextlib import AbstractContextManager

    from sqlalchemy.engine import Connection


def migrate(begin: Callable[[], AbstractContextManager[Connection]], url: str) -> None:
    """Apply the steps the store lacks, each in its own transaction from `begin`;
    StoreError if the store has a step this runner does not know."""
    known = [name for name, _ in MIGRATIONS]
    with begin() as conn:
        conn.exec_driver_sql(_MIGRATIONS_DDL)
        done = {r.name for r in conn.execute(sa.select(migrations_table.c.name))}
    newer = sorted(done - set(known))
    if newer:
        raise StoreError(
            f"the store {safe_url(url)} was written by a newer runner "
            f"(schema step {newer[-1]}); upgrade runner, or use another --output"
        )
    for name, migration in MIGRATIONS:
        if name in done:
            continue
        # Each step in its own transaction; re-checked inside it, since another
        # process may be migrating the same file right now.
        with begin() as conn:
            applied = conn.execute(
                sa.select(migrations_table.c.name).where(
                    migrations_table.c.name == name
                )
            ).first()
            if applied is None:
                migration(conn)
                conn.execute(
                    migrations_table.insert().values(name=name, applied_at=timestamp())
                )


def m001_initial(conn: Connection) -> None:
    """jobs, items, runs, attempts and job_totals, as release e3dcaa4 made them."""
    # SQLite numbers rows itself (an INTEGER PRIMARY KEY is the rowid); PostgreSQL
    # needs SERIAL for that, which is what SQLAlchemy's DDL gave it before.
    key = "SERIAL" if conn.dialect.name == "postgresql" else "INTEGER"
    for statement in _M001:
        conn.exec_driver_sql(statement.replace("{key}", key))


def m002_answer_parts_and_grounding(conn: Connection) -> None:
    """What an answer was: its parts without image bytes and its groundingMetadata
    per attempt, and the success's groundingMetadata per item (for the manifest)."""
    _add_columns(conn, _M002)


def m003_simulated_runs_and_pruned_requests(conn: Connection) -> None:
    """Which runs (and so attempts) were simulated, and the requests of items
    `runner prune` removed (SPEC 5, issue 12)."""
    _add_columns(conn, _M003)


def m004_marks(conn: Connection) -> None:
    """Marks on images: star or reject and a note, per image of an item (SPEC 6)."""
    conn.exec_driver_sql(_M004)


def m005_lineage(conn: Connection) -> None:
    """Each derived item's parent (SPEC 6): the parent job by name (a lineage
    outlives the job's removal), item key and image, and the mode it was made in.
    (m004 is the marks table; the two touch different tables, so a store may get
    them in either order.)"""
    _add_columns(conn, _M005)
    conn.exec_driver_sql(_M005_INDEX)


def m006_batches(conn: Connection) -> None:
    """The Batch API transport (SPEC 7): a table of batches; each item's current
    batch; each attempt's transport; the part of the running totals sent by batch.
    (m005 is another branch's lineage step; the two touch different columns, so a
    store may get them in either order.)"""
    key = "SERIAL" if conn.dialect.name == "postgresql" else "INTEGER"
    conn.exec_driver_sql(_M006_TABLE.replace("{key}", key))
    conn.exec_driver_sql(_M006_INDEX)
    _add_columns(conn, _M006)


MIGRATIONS: list[tuple[str, Callable[[Connection], None]]] = [
    ("m001_initial", m001_initial),
    ("m002_answer_parts_and_grounding", m002_answer_parts_and_grounding),
    (
        "m003_simulated_runs_and_pruned_requests",
        m003_simulated_runs_and_pruned_requests,
    ),
    ("m004_marks", m004_marks),
    ("m005_lineage", m005_lineage),
    ("m006_batches", m006_batches),
]
# A new step goes in records.MIGRATION_NAMES too: the status reader checks a store
# against that list.
assert tuple(name for name, _ in MIGRATIONS) == MIGRATION_NAMES, MIGRATION_NAMES


def _add_columns(conn: Connection, steps: Sequence[tuple[str, str, str]]) -> None:
    for table, column, statement in steps:
        # A store whose bookkeeping rows were lost may have the column already;
        # SQLite has no ADD COLUMN IF NOT EXISTS.
        if column not in {c["name"] for c in sa.inspect(conn).get_columns(table)}:
            conn.exec_driver_sql(statement)


_MIGRATIONS_DDL = """\
CREATE TABLE IF NOT EXISTS _runner_migrations (
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (name)
)"""

# IF NOT EXISTS: a store whose bookkeeping rows were lost still has its tables, and
# gets its steps recorded again rather than an error.
_M001 = (
    """\
CREATE TABLE IF NOT EXISTS jobs (
    id {key} NOT NULL,
    name TEXT NOT NULL,
    job_path TEXT,
    model TEXT,
    settings_json TEXT,
    plan_digest TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    lease_owner TEXT,
    lease_host TEXT,
    lease_pid INTEGER,
    lease_expires FLOAT,
    PRIMARY KEY (id),
    UNIQUE (name)
)""",
    """\
CREATE TABLE IF NOT EXISTS items (
    id {key} NOT NULL,
    job_id INTEGER NOT NULL,
    "key" TEXT NOT NULL,
    active INTEGER NOT NULL,
    position INTEGER NOT NULL,
    prompt_id TEXT NOT NULL,
    prompt TEXT NOT NULL,
    vars_json TEXT NOT NULL,
    aspect_ratio TEXT NOT NULL,
    image_size TEXT,
    ref_label TEXT NOT NULL,
    references_json TEXT NOT NULL,
    sample INTEGER NOT NULL,
    request_json TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    tries_used INTEGER NOT NULL,
    unknown_used INTEGER NOT NULL,
    finish_reason TEXT,
    error TEXT,
    outputs_json TEXT,
    usage_json TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_items_job_key UNIQUE (job_id, "key"),
    FOREIGN KEY(job_id) REFERENCES jobs (id)
)""",
    "CREATE INDEX IF NOT EXISTS ix_items_job_status ON items (job_id, active, status)",
    """\
CREATE TABLE IF NOT EXISTS runs (
    id {key} NOT NULL,
    job_id INTEGER NOT NULL,
    command TEXT NOT NULL,
    host TEXT,
    pid INTEGER,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    result TEXT,
    PRIMARY KEY (id),
    FOREIGN KEY(job_id) REFERENCES jobs (id)
)""",
    """\
CREATE TABLE IF NOT EXISTS job_totals (
    job_id INTEGER NOT NULL,
    image_size TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    unknown INTEGER NOT NULL,
    unpriced INTEGER NOT NULL,
    paid_failed INTEGER NOT NULL,
    images INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    candidates_tokens INTEGER NOT NULL,
    thoughts_tokens INTEGER NOT NULL,
    image_tokens INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    PRIMARY KEY (job_id, image_size),
    FOREIGN KEY(job_id) REFERENCES jobs (id)
)""",
    """\
CREATE TABLE IF NOT EXISTS attempts (
    id {key} NOT NULL,
    item_id INTEGER NOT NULL,
    run_id INTEGER,
    number INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    http_status INTEGER,
    outcome TEXT,
    reason TEXT,
    finish_reason TEXT,
    usage_json TEXT,
    model_version TEXT,
    response_id TEXT,
    latency_ms FLOAT,
    retry_after FLOAT,
    outputs_json TEXT,
    prompt_tokens INTEGER NOT NULL,
    candidates_tokens INTEGER NOT NULL,
    thoughts_tokens INTEGER NOT NULL,
    image_tokens INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    images INTEGER NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(item_id) REFERENCES items (id),
    FOREIGN KEY(run_id) REFERENCES runs (id)
)""",
    "CREATE INDEX IF NOT EXISTS ix_attempts_item ON attempts (item_id)",
)

_M002 = (
    ("attempts", "parts_json", "ALTER TABLE attempts ADD COLUMN parts_json TEXT"),
    (
        "attempts",
        "grounding_json",
        "ALTER TABLE attempts ADD COLUMN grounding_json TEXT",
    ),
    ("items", "grounding_json", "ALTER TABLE items ADD COLUMN grounding_json TEXT"),
)

_M003 = (
    (
        "runs",
        "simulated",
        "ALTER TABLE runs ADD COLUMN simulated INTEGER DEFAULT 0 NOT NULL",
    ),
    (
        "attempts",
        "simulated",
        "ALTER TABLE attempts ADD COLUMN simulated INTEGER DEFAULT 0 NOT NULL",
    ),
    (
        "jobs",
        "pruned_requests",
        "ALTER TABLE jobs ADD COLUMN pruned_requests INTEGER DEFAULT 0 NOT NULL",
    ),
)

_M004 = """\
CREATE TABLE IF NOT EXISTS marks (
    item_id INTEGER NOT NULL,
    image TEXT NOT NULL,
    mark TEXT,
    note TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (item_id, image),
    FOREIGN KEY(item_id) REFERENCES items (id)
)"""
_M005 = tuple(
    ("items", column, f"ALTER TABLE items ADD COLUMN {column} TEXT")
    for column in ("parent_job", "parent_key", "parent_image", "parent_mode")
)
# A parent's children, for the gallery's links back.
_M005_INDEX = (
    "CREATE INDEX IF NOT EXISTS ix_items_parent ON items (parent_job, parent_key)"
)

_M006_TABLE = """\
CREATE TABLE IF NOT EXISTS batches (
    id {key} NOT NULL,
    job_id INTEGER NOT NULL,
    run_id INTEGER,
    display_name TEXT NOT NULL,
    remote_name TEXT,
    model TEXT NOT NULL,
    state TEXT,
    input TEXT NOT NULL,
    input_file TEXT,
    result_file TEXT,
    items INTEGER NOT NULL,
    requests INTEGER,
    succeeded INTEGER,
    failed INTEGER,
    pending INTEGER,
    simulated INTEGER DEFAULT 0 NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    seen_at TEXT,
    ended_at TEXT,
    error TEXT,
    PRIMARY KEY (id),
    FOREIGN KEY(job_id) REFERENCES jobs (id),
    FOREIGN KEY(run_id) REFERENCES runs (id)
)"""
_M006_INDEX = "CREATE INDEX IF NOT EXISTS ix_batches_job ON batches (job_id, ended_at)"
_M006 = (
    ("items", "batch_id", "ALTER TABLE items ADD COLUMN batch_id INTEGER"),
    (
        "attempts",
        "transport",
        "ALTER TABLE attempts ADD COLUMN transport TEXT DEFAULT 'interactive' NOT NULL",
    ),
    *(
        (
            "job_totals",
            column,
            f"ALTER TABLE job_totals ADD COLUMN {column} INTEGER DEFAULT 0 NOT NULL",
        )
        for column in BATCH_COLUMNS
    ),
)
