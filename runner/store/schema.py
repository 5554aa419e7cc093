"""The store's tables as SQLAlchemy Core objects, for building statements.

Owns: the declared tables (what today's schema is; `migrations` creates and changes
it, and a test checks the two agree), the item column behind each status axis, and
the timestamp format of every `*_at` column. Must not create tables or run queries.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from runner.store.records import BATCH_COLUMNS, TOKEN_COLUMNS

metadata = sa.MetaData()
_ZERO = sa.text("0")  # a server default, as the migrations' DDL writes it

migrations_table = sa.Table(
    "_runner_migrations",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("applied_at", sa.Text, nullable=False),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("job_path", sa.Text),
    sa.Column("model", sa.Text),
    sa.Column("settings_json", sa.Text),
    sa.Column("plan_digest", sa.Text),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Text, nullable=False),
    sa.Column("lease_owner", sa.Text),
    sa.Column("lease_host", sa.Text),
    sa.Column("lease_pid", sa.Integer),
    sa.Column("lease_expires", sa.Float),
    # m003: requests of items `runner prune` removed (left out of current ratios;
    # their money stays in job_totals)
    sa.Column("pruned_requests", sa.Integer, nullable=False, server_default=_ZERO),
)

items = sa.Table(
    "items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id"), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("active", sa.Integer, nullable=False, default=1),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("prompt_id", sa.Text, nullable=False),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("vars_json", sa.Text, nullable=False),
    sa.Column("aspect_ratio", sa.Text, nullable=False),
    sa.Column("image_size", sa.Text),
    sa.Column("ref_label", sa.Text, nullable=False),
    sa.Column("references_json", sa.Text, nullable=False),
    sa.Column("sample", sa.Integer, nullable=False),
    sa.Column("request_json", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("tries_used", sa.Integer, nullable=False, default=0),
    sa.Column("unknown_used", sa.Integer, nullable=False, default=0),
    sa.Column("finish_reason", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("outputs_json", sa.Text),
    sa.Column("usage_json", sa.Text),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Text, nullable=False),
    # m002: the groundingMetadata of the success, like usage_json (the manifest's)
    sa.Column("grounding_json", sa.Text),
    # m005: a derived item's parent: job name, item key, image (relative to that
    # job's folder) and the mode (edit, continue, rerender); NULL for others
    sa.Column("parent_job", sa.Text),
    sa.Column("parent_key", sa.Text),
    sa.Column("parent_image", sa.Text),
    sa.Column("parent_mode", sa.Text),
    # m006: the batch the item is in while `in_batch` (SPEC 7); kept after, naming
    # the batch it was last sent in (a batch's items in input order, for results
    # matched by position)
    sa.Column("batch_id", sa.Integer),
    sa.UniqueConstraint("job_id", "key", name="uq_items_job_key"),
    sa.Index("ix_items_job_status", "job_id", "active", "status"),
    sa.Index("ix_items_parent", "parent_job", "parent_key"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id"), nullable=False),
    sa.Column("command", sa.Text, nullable=False),
    sa.Column("host", sa.Text),
    sa.Column("pid", sa.Integer),
    sa.Column("started_at", sa.Text, nullable=False),
    sa.Column("ended_at", sa.Text),
    sa.Column("result", sa.Text),
    # m003: 1 for a --simulate run: its attempts are simulated (SPEC 5)
    sa.Column("simulated", sa.Integer, nullable=False, server_default=_ZERO),
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), nullable=False),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id")),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("started_at", sa.Text, nullable=False),
    sa.Column("ended_at", sa.Text),
    sa.Column("http_status", sa.Integer),
    sa.Column("outcome", sa.Text),
    sa.Column("reason", sa.Text),
    sa.Column("finish_reason", sa.Text),
    sa.Column("usage_json", sa.Text),
    sa.Column("model_version", sa.Text),
    sa.Column("response_id", sa.Text),
    sa.Column("latency_ms", sa.Float),
    sa.Column("retry_after", sa.Float),
    sa.Column("outputs_json", sa.Text),
    # Token counts split by how they are billed, copied out of usage_json so that
    # status and budgets are SQL sums, not a JSON parse per attempt.
    sa.Column("prompt_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("candidates_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("thoughts_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("image_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("total_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("images", sa.Integer, nullable=False, default=0),
    # m002: the answer's parts without image bytes (client.outcome.FILE_KEY says
    # what is kept) and its groundingMetadata, both JSON
    sa.Column("parts_json", sa.Text),
    sa.Column("grounding_json", sa.Text),
    # m003: its run's `simulated`: such attempts add to no totals, and their item
    # is left `simulated` rather than `succeeded`
    sa.Column("simulated", sa.Integer, nullable=False, server_default=_ZERO),
    # m006: how it was sent: interactive (generateContent) or batch (SPEC 7), which
    # decides its price
    sa.Column(
        "transport", sa.Text, nullable=False, server_default=sa.text("'interactive'")
    ),
    sa.Index("ix_attempts_item", "item_id"),
)


# Running totals per job and image size, kept by record_attempts and
# recover_abandoned in the same transaction as the attempt they count, so status
# and budgets read a few rows instead of summing every attempt.
job_totals = sa.Table(
    "job_totals",
    metadata,
    sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id"), primary_key=True),
    sa.Column("image_size", sa.Text, primary_key=True),  # "" = the model's default
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("requests", sa.Integer, nullable=False, default=0),
    sa.Column("unknown", sa.Integer, nullable=False, default=0),
    sa.Column("unpriced", sa.Integer, nullable=False, default=0),
    sa.Column("paid_failed", sa.Integer, nullable=False, default=0),
    sa.Column("images", sa.Integer, nullable=False, default=0),
    *(sa.Column(name, sa.Integer, nullable=False, default=0) for name in TOKEN_COLUMNS),
    # m006: the part of the above sent through the Batch API
    *(
        sa.Column(name, sa.Integer, nullable=False, server_default=_ZERO)
        for name in BATCH_COLUMNS
    ),
)

# m004: a user's marks on images (SPEC 6), one row per marked image of an item. The
# image is named as the item's outputs name it (relative to the job folder); the
# row goes when both its mark and its note are cleared. `mark` is not constrained
# in SQL (a CHECK would need a table rebuild on SQLite to allow a new mark):
# `records.MARKS` says what is written.
marks = sa.Table(
    "marks",
    metadata,
    sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), primary_key=True),
    sa.Column("image", sa.Text, primary_key=True),
    sa.Column("mark", sa.Text),
    sa.Column("note", sa.Text),
    sa.Column("updated_at", sa.Text, nullable=False),
)

# m006: the job's Batch API batches (SPEC 7). A row is written before the batch
# is created (its display name is the job's name and this id, so a crash between
# the two is resolved by looking the name up), `remote_name` once the API names
# it; `state` and the counts are the API's as last seen; `ended_at` closes it
# (results collected, or its items put back to pending, `error` saying why).
batches = sa.Table(
    "batches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id"), nullable=False),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id")),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("remote_name", sa.Text),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("state", sa.Text),
    sa.Column("input", sa.Text, nullable=False),  # inline | file
    sa.Column("input_file", sa.Text),  # files/... of an uploaded JSONL input
    sa.Column("result_file", sa.Text),  # files/... of the results, once known
    sa.Column("items", sa.Integer, nullable=False),
    sa.Column("requests", sa.Integer),
    sa.Column("succeeded", sa.Integer),
    sa.Column("failed", sa.Integer),
    sa.Column("pending", sa.Integer),
    sa.Column("simulated", sa.Integer, nullable=False, server_default=_ZERO),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Text, nullable=False),
    sa.Column("seen_at", sa.Text),
    sa.Column("ended_at", sa.Text),
    sa.Column("error", sa.Text),
    sa.Index("ix_batches_job", "job_id", "ended_at"),
)

# Axes that status groups by, and the item column holding each.
AXIS_COLUMNS = {
    "prompt": items.c.prompt_id,
    "aspect_ratio": items.c.aspect_ratio,
    "image_size": items.c.image_size,
    "references": items.c.ref_label,
}


def timestamp() -> str:
    """The value of a `*_at` column for this moment: ISO-8601 UTC, milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")
