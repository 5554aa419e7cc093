"""The store: schema, plan upsert, leases, attempt records and status sums."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from runner.errors import JobBusyError, StoreError
from runner.plan import Item, Request, build_plan, item_key, plan_digest
from runner.spec import load_job
from runner.store import (
    AttemptEnd,
    AttemptRecord,
    AttemptResult,
    AttemptStart,
    JobRow,
    Store,
)
from runner.store.reader import StoreReader
from runner.store.schema import metadata

# A store written by the last release before the store became a package (see its
# README): what every later schema step must upgrade.
STORE_M001 = Path(__file__).parent / "data" / "store-m001"


def make_item(
    text: str, sample: int = 1, position: int = 0, image_size: str | None = None
) -> Item:
    request = Request(
        model="gemini-3.1-flash-image-preview",
        text=text,
        aspect_ratio="1:1",
        image_size=image_size,
        references=(),
        generation={},
        system_instruction=None,
        safety_settings=None,
    )
    return Item(
        key=item_key(request, sample),
        position=position,
        prompt_id="p1",
        vars={},
        aspect_ratio="1:1",
        image_size=image_size,
        ref_set=0,
        ref_label="noref",
        sample=sample,
        request=request,
    )


@pytest.fixture
def job(store: Store) -> JobRow:
    return store.upsert_job("demo", "jobs/demo.yaml", "m", {"max_attempts": 3})


def test_a_blank_database_gets_exactly_the_documented_columns(store: Store) -> None:
    inspector = sa.inspect(store.engine)
    columns = {
        t: {c["name"] for c in inspector.get_columns(t)}
        for t in inspector.get_table_names()
    }
    assert columns == {
        "_runner_migrations": {"name", "applied_at"},
        "jobs": {
            "id", "name", "job_path", "model", "settings_json", "plan_digest",
            "created_at", "updated_at", "lease_owner", "lease_host", "lease_pid",
            "lease_expires", "pruned_requests",
        },
        "items": {
            "id", "job_id", "key", "active", "position", "prompt_id", "prompt",
            "vars_json", "aspect_ratio", "image_size", "ref_label", "references_json",
            "sample", "request_json", "status", "attempts", "tries_used",
            "unknown_used", "finish_reason", "error", "outputs_json", "usage_json",
            "created_at", "updated_at", "grounding_json", "parent_job", "parent_key",
            "parent_image", "parent_mode",
            "batch_id",
        },
        "runs": {
            "id", "job_id", "command", "host", "pid", "started_at", "ended_at",
            "result", "simulated",
        },
        "attempts": {
            "id", "item_id", "run_id", "number", "started_at", "ended_at",
            "http_status", "outcome", "reason", "finish_reason", "usage_json",
            "model_version", "response_id", "latency_ms", "retry_after",
            "outputs_json", "prompt_tokens", "candidates_tokens", "thoughts_tokens",
            "image_tokens", "total_tokens", "images", "parts_json", "grounding_json",
            "simulated", "transport",
        },
        "job_totals": {
            "job_id", "image_size", "attempts", "requests", "unknown", "unpriced",
            "paid_failed", "images", "prompt_tokens", "candidates_tokens",
            "thoughts_tokens", "image_tokens", "total_tokens", "batch_requests",
            "batch_unpriced", "batch_prompt_tokens", "batch_candidates_tokens",
            "batch_thoughts_tokens", "batch_image_tokens", "batch_total_tokens",
        },
        "marks": {"item_id", "image", "mark", "note", "updated_at"},
        "batches": {
            "id", "job_id", "run_id", "display_name", "remote_name", "model",
            "state", "input", "input_file", "result_file", "items", "requests",
            "succeeded", "failed", "pending", "simulated", "created_at",
            "updated_at", "seen_at", "ended_at", "error",
        },
    }  # fmt: skip


def test_the_store_uses_wal_and_records_each_migration_once(tmp_path: Path) -> None:
    Store.for_output(tmp_path).close()
    again = Store.for_output(tmp_path)
    with again.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        names = conn.exec_driver_sql("SELECT name FROM _runner_migrations").all()
    again.close()
    assert names == [
        ("m001_initial",),
        ("m002_answer_parts_and_grounding",),
        ("m003_simulated_runs_and_pruned_requests",),
        ("m004_marks",),
        ("m005_lineage",),
        ("m006_batches",),
    ]


def describe(db: Path) -> dict[str, dict[str, Any]]:
    """Every table of a SQLite file as SQLite itself reports it: columns (position,
    name, type, not null, default, primary key), indexes with their columns, and
    foreign keys."""
    with closing(sqlite3.connect(db)) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        return {
            table: {
                "columns": conn.execute(f"PRAGMA table_info({table})").fetchall(),
                "indexes": sorted(
                    (
                        name,
                        unique,
                        origin,
                        partial,
                        conn.execute(f"PRAGMA index_info({name})").fetchall(),
                    )
                    for _, name, unique, origin, partial in conn.execute(
                        f"PRAGMA index_list({table})"
                    )
                ),
                "foreign_keys": sorted(
                    conn.execute(f"PRAGMA foreign_key_list({table})").fetchall()
                ),
            }
            for table in tables
        }


def test_a_store_migrated_from_blank_has_exactly_the_declared_tables(
    tmp_path: Path,
) -> None:
    Store.for_output(tmp_path / "migrated").close()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'declared.db'}")
    metadata.create_all(engine)
    engine.dispose()
    migrated = describe(tmp_path / "migrated" / "runner.db")
    assert set(migrated) == {
        "_runner_migrations", "jobs", "items", "runs", "attempts", "job_totals",
        "marks", "batches",
    }  # fmt: skip
    assert migrated == describe(tmp_path / "declared.db")


def sqlite_master(db: Path) -> list[tuple[str, str, str, str | None]]:
    """What SQLite keeps of a schema, in creation order; the DDL text with its
    whitespace collapsed (its layout is all that differs from SQLAlchemy's)."""
    with closing(sqlite3.connect(db)) as conn:
        return [
            (kind, name, table, None if sql is None else " ".join(sql.split()))
            for kind, name, table, sql in conn.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid"
            )
        ]


def test_m001_creates_the_schema_the_release_before_it_created(tmp_path: Path) -> None:
    # That release ran SQLAlchemy's create_all where m001 now has literal DDL; the
    # steps after m001 then change both alike.
    (tmp_path / "old").mkdir()
    shutil.copy(STORE_M001 / "runner.db", tmp_path / "old" / "runner.db")
    Store.for_output(tmp_path / "old").close()
    Store.for_output(tmp_path / "new").close()
    assert sqlite_master(tmp_path / "new" / "runner.db") == sqlite_master(
        tmp_path / "old" / "runner.db"
    )


def test_a_store_written_by_the_release_before_upgrades_and_reads_the_same(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(STORE_M001 / "runner.db", out / "runner.db")
    printed = json.loads((STORE_M001 / "status.json").read_text("utf-8"))
    store = Store.for_output(out)  # applies the steps the store lacks
    try:
        job = store.get_job("tiny")
        assert job is not None
        status = store.status(job)
        # m003 added the `simulated` count: that release simulated nothing;
        # m006 the `in_batch` one: nor did it send batches
        assert status.counts == {**printed["counts"], "simulated": 0, "in_batch": 0}
        assert sum(status.counts.values()) == printed["total"]
        assert status.usage == printed["usage"]
        assert status.requests == printed["requests"]
        assert status.spend.images == printed["images"]
        per_success = status.spend.requests / status.counts["succeeded"]
        assert per_success == printed["attempts_per_success"]
        by_reason = sorted(status.failures, key=lambda f: f["status"])
        assert by_reason == sorted(printed["failures"], key=lambda f: f["status"])
        with StoreReader(out / "runner.db") as reader:  # the fast path trusts it
            assert reader.status(job) == status
        with store.engine.connect() as conn:
            steps = conn.exec_driver_sql("SELECT * FROM _runner_migrations").all()
        assert steps[0] == ("m001_initial", "2026-12-02T16:00:49.142+00:00")
        assert [name for name, _ in steps[1:]] == [
            "m002_answer_parts_and_grounding",
            "m003_simulated_runs_and_pruned_requests",
            "m004_marks",
            "m005_lineage",
            "m006_batches",
        ]
        inspector = sa.inspect(store.engine)
        attempt_columns = [c["name"] for c in inspector.get_columns("attempts")]
        assert attempt_columns[-4:] == [
            "parts_json", "grounding_json", "simulated", "transport",
        ]  # fmt: skip
        item_columns = [c["name"] for c in inspector.get_columns("items")]
        assert item_columns[-6:] == [
            "grounding_json", "parent_job", "parent_key", "parent_image", "parent_mode",
            "batch_id",
        ]  # fmt: skip
        # what the old runner recorded has no parts and no grounding: both empty
        assert {
            (a["parts_json"], a["grounding_json"]) for a in store.attempt_rows(job)
        } == {(None, None)}
        assert {row["grounding"] for row in store.manifest_rows(job)} == {None}
        assert {row["parent"] for row in store.manifest_rows(job)} == {None}

        finished = store.manifest_rows(job)
        spec = load_job(STORE_M001 / "tiny.yaml")
        again = store.sync_plan(job, build_plan(spec).items, plan_digest(spec))
        assert (again.new, again.existing, again.deactivated) == (0, 8, 0)
        assert store.manifest_rows(job) == finished
        assert store.pending_items(job) == []
        assert store.status(job) == status
    finally:
        store.close()


def test_sync_plan_inserts_new_keeps_known_and_deactivates_dropped(
    store: Store, job: JobRow
) -> None:
    a, b, c = make_item("a"), make_item("b", position=1), make_item("c", position=2)
    assert store.sync_plan(job, [a, b]).new == 2
    first = store.pending_items(job)[0].id
    store.finish_attempt(
        store.begin_attempt(first, run_id(store, job), 1),
        first,
        AttemptResult(outcome="success", reason="", item_status="succeeded"),
    )
    result = store.sync_plan(job, [a, c])
    assert (result.new, result.existing, result.deactivated) == (1, 1, 1)
    rows = store.manifest_rows(job)
    assert [(r["prompt"], r["status"]) for r in rows] == [
        ("a", "succeeded"),
        ("c", "pending"),
    ]


def test_a_live_lease_refuses_a_second_runner_with_a_clear_message(
    store: Store, job: JobRow
) -> None:
    store.acquire_lease(job, "first")
    with pytest.raises(JobBusyError, match="being run by another process"):
        store.acquire_lease(job, "second")
    store.release_lease(job, "first")
    store.acquire_lease(job, "second")


def test_a_lease_left_by_a_dead_process_is_taken_over_at_once(
    store: Store, job: JobRow
) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    store.acquire_lease(job, "crashed")
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE jobs SET lease_pid = ? WHERE id = ?", (int(dead.stdout), job.id)
        )
    store.acquire_lease(job, "next")  # no JobBusyError


def test_items_left_running_become_pending_and_their_attempt_abandoned(
    store: Store, job: JobRow
) -> None:
    store.sync_plan(job, [make_item("a")])
    item = store.pending_items(job)[0]
    store.begin_attempt(item.id, run_id(store, job), 1)
    assert store.pending_items(job) == []
    assert store.recover_abandoned(job) == 1
    assert [i.id for i in store.pending_items(job)] == [item.id]
    (attempt,) = store.attempt_rows(job)
    assert attempt["outcome"] == "abandoned"
    assert store.spend(job).unpriced == {None: 1}
    assert store.status(job).requests == {
        "sent": 1, "unknown": 1, "not_sent": 0, "paid_failed": 0
    }  # fmt: skip


def test_status_sums_usage_of_every_attempt_including_failed_ones(
    store: Store, job: JobRow
) -> None:
    store.sync_plan(job, [make_item("a"), make_item("b", position=1)])
    a, b = store.pending_items(job)
    run = run_id(store, job)
    usage = {
        "promptTokenCount": 10,
        "candidatesTokenCount": 1120,
        "totalTokenCount": 1130,
    }
    store.finish_attempt(
        store.begin_attempt(a.id, run, 1),
        a.id,
        AttemptResult(
            outcome="success", reason="", item_status="succeeded", usage=usage,
            http_status=200, outputs=["images/a.png"],
        ),
    )  # fmt: skip
    store.finish_attempt(
        store.begin_attempt(b.id, run, 1),
        b.id,
        AttemptResult(
            outcome="blocked", reason="IMAGE_SAFETY", item_status="blocked",
            usage={"promptTokenCount": 7, "totalTokenCount": 7}, http_status=200,
        ),
    )  # fmt: skip
    report = store.status(job, by=["prompt"])
    assert report.counts["succeeded"] == 1 and report.counts["blocked"] == 1
    assert report.usage == {
        "promptTokenCount": 17,
        "candidatesTokenCount": 1120,
        "thoughtsTokenCount": 0,
        "totalTokenCount": 1137,
    }
    assert report.requests["paid_failed"] == 1  # the blocked answer was billed
    assert report.spend.images == 1
    by_prompt = report.by_axis["prompt"]["p1"]
    assert (by_prompt["items"], by_prompt["succeeded"], by_prompt["blocked"]) == (
        2,
        1,
        1,
    )
    assert by_prompt["spend"].usage["totalTokenCount"] == 1137
    assert report.failures == [
        {"status": "blocked", "reason": "IMAGE_SAFETY", "count": 1}
    ]
    row = store.manifest_rows(job)[0]
    assert row["outputs"] == ["images/a.png"] and row["usage"] == usage


def test_totals_summed_from_the_attempts_equal_those_kept_as_they_were_recorded(
    store: Store, job: JobRow
) -> None:
    """One rule, two readings: the running totals the write path keeps per attempt,
    and the totals summed from the stored attempts (`rebuild_totals`, and the spend
    per axis of `status --by`)."""
    billed = {"promptTokenCount": 7, "candidatesTokenCount": 1120,
              "totalTokenCount": 1127}  # fmt: skip
    ends = [
        AttemptResult(outcome="success", reason="", item_status="succeeded",
                      http_status=200, usage=billed, outputs=["a.png"]),
        AttemptResult(outcome="blocked", reason="SAFETY", item_status="blocked",
                      http_status=200, usage={"totalTokenCount": 7}),
        AttemptResult(outcome="unknown", reason="timeout", item_status="failed"),
        AttemptResult(outcome="transient", reason="refused", item_status="pending"),
        AttemptResult(outcome="transient", reason="503", item_status="pending",
                      http_status=503),
        AttemptResult(outcome="not_sent", reason="changed", item_status="failed"),
        AttemptResult(outcome="fatal_item", reason="400", item_status="failed",
                      http_status=400),
    ]  # fmt: skip
    # and two answers a Batch API batch brought: billed, and possibly billed
    by_batch = [ends[0], ends[2]]
    sizes = (None, "1K", "2K")
    plan = [
        make_item(f"i{n}", position=n, image_size=sizes[n % 3])
        for n in range(len(ends) + 1 + len(by_batch))
    ]
    store.sync_plan(job, plan)
    *work, left, batched_1, batched_2 = store.pending_items(job)
    run = run_id(store, job)
    batch = store.record_batch(
        job, run, [batched_1.id, batched_2.id], model="m", input_kind="inline"
    )
    started = store.record_attempts([AttemptStart(w.id, run, 1) for w in work])
    store.record_attempts(
        [
            AttemptEnd(attempt_id, w.id, result)
            for attempt_id, w, result in zip(started, work, ends, strict=True)
            if attempt_id is not None
        ]
        + [
            AttemptRecord(w.id, run, 1, batch.id, result)
            for w, result in zip((batched_1, batched_2), by_batch, strict=True)
        ]
    )
    store.begin_attempt(left.id, run, 1)
    assert store.recover_abandoned(job) == 1  # the last (1K) item: abandoned
    requests = store.status(job).requests
    assert requests == {"sent": 8, "unknown": 3, "not_sent": 2, "paid_failed": 1}
    spend = store.spend(job)
    assert spend.unpriced == {None: 1, "1K": 1, "2K": 1}
    assert spend.batch_unpriced == {None: 1}
    assert spend.batch_requests == 2
    assert spend.batch_tokens["total_tokens"] == 1127

    kept = totals_rows(store)
    assert [row["image_size"] for row in kept] == ["", "1K", "2K"]
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM job_totals")
    store.rebuild_totals(job)
    assert totals_rows(store) == kept

    store.finish_attempt(  # the write path adds to rebuilt totals as to any
        store.begin_attempt(left.id, run, 2), left.id, ends[2]
    )
    by_size = store.status(job, by=["image_size"]).by_axis["image_size"]
    for row in totals_rows(store):
        spend = by_size[row.pop("image_size") or "(default)"]["spend"]
        del row["job_id"]
        assert row == {
            "attempts": spend.attempts,
            "requests": spend.requests,
            "unknown": spend.unknown,
            "unpriced": sum(spend.unpriced.values()),
            "paid_failed": spend.paid_failed,
            "images": spend.images,
            **spend.tokens,
            "batch_requests": spend.batch_requests,
            "batch_unpriced": sum(spend.batch_unpriced.values()),
            **{
                f"batch_{name}": spend.batch_tokens.get(name, 0)
                for name in spend.tokens
            },
        }


def totals_rows(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT * FROM job_totals ORDER BY image_size")
        return [dict(row._mapping) for row in rows]


def test_requeue_gives_failed_items_fresh_tries(store: Store, job: JobRow) -> None:
    store.sync_plan(job, [make_item("a")])
    (item,) = store.pending_items(job)
    store.finish_attempt(
        store.begin_attempt(item.id, run_id(store, job), 1),
        item.id,
        AttemptResult(
            outcome="unknown", reason="timeout", item_status="failed",
            counts_as_unknown=True,
        ),
    )  # fmt: skip
    assert store.requeue(job, ["failed"]) == 1
    (again,) = store.pending_items(job)
    assert (again.attempts, again.tries_used, again.unknown_used) == (1, 0, 0)


def test_a_file_that_is_not_a_database_gives_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "runner.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"runner\.db is not a SQLite database"):
        Store.for_output(tmp_path)


def test_a_store_locked_by_another_program_gives_a_clear_error(
    tmp_path: Path,
) -> None:
    Store.for_output(tmp_path).close()
    holder = sqlite3.connect(tmp_path / "runner.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="locked.*wait for it"):
            Store(f"sqlite:///{tmp_path / 'runner.db'}", busy_timeout=0.2)
    finally:
        holder.rollback()
        holder.close()


def test_a_store_that_lost_its_bookkeeping_rows_is_opened_and_recorded_again(
    tmp_path: Path,
) -> None:
    Store.for_output(tmp_path).close()
    with closing(sqlite3.connect(tmp_path / "runner.db")) as conn, conn:
        conn.execute("DELETE FROM _runner_migrations")
    Store.for_output(tmp_path).close()  # the tables and columns are there already
    with closing(sqlite3.connect(tmp_path / "runner.db")) as conn:
        names = conn.execute("SELECT name FROM _runner_migrations ORDER BY name")
        assert [n for (n,) in names] == [
            "m001_initial",
            "m002_answer_parts_and_grounding",
            "m003_simulated_runs_and_pruned_requests",
            "m004_marks",
            "m005_lineage",
            "m006_batches",
        ]


def test_a_store_from_a_newer_runner_is_refused_not_damaged(tmp_path: Path) -> None:
    Store.for_output(tmp_path).close()
    with closing(sqlite3.connect(tmp_path / "runner.db")) as conn, conn:
        conn.execute(
            "INSERT INTO _runner_migrations VALUES ('m999_future', '2030-01-01')"
        )
    with pytest.raises(StoreError, match="newer runner .*m999_future"):
        Store.for_output(tmp_path)


def test_two_processes_migrating_a_blank_store_at_once_both_succeed(
    tmp_path: Path,
) -> None:
    code = (
        "import sys; from pathlib import Path; from runner.store import Store; "
        "Store.for_output(Path(sys.argv[1])).close()"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)]) for _ in range(4)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]


def run_id(store: Store, job: JobRow) -> int:
    return store.start_run(job, "test")


def test_a_resync_refreshes_labels_that_changed_and_only_those(
    store: Store, job: JobRow
) -> None:
    from dataclasses import replace

    a, b = make_item("a"), make_item("b", position=1)
    store.sync_plan(job, [a, b])
    renamed = replace(a, prompt_id="hero")
    store.sync_plan(job, [renamed, b])
    assert [r["prompt_id"] for r in store.manifest_rows(job)] == ["hero", "p1"]


GROUNDING = {
    "webSearchQueries": ["Lisbon tram 28"],
    "groundingChunks": [{"web": {"uri": "https://a.example/28", "title": "a"}}],
}
PARTS: list[dict[str, Any]] = [
    {"text": "Sketching.", "thought": True},
    {"inlineData": {"mimeType": "image/png"}, "thought": True},
    {"text": "Here it is.", "thoughtSignature": "c2lnLTE="},
    {
        "inlineData": {"mimeType": "image/png", "file": "images/a.png"},
        "thoughtSignature": "c2lnLTI=",
    },
]


def test_each_attempt_keeps_its_answers_parts_and_grounding(
    store: Store, job: JobRow
) -> None:
    store.sync_plan(job, [make_item("a")])
    (item,) = store.pending_items(job)
    run = run_id(store, job)
    text_only = [{"text": "No picture this time.", "thoughtSignature": "c2lnLTA="}]
    store.finish_attempt(
        store.begin_attempt(item.id, run, 1),
        item.id,
        AttemptResult(
            outcome="no_image", reason="answered with text only",
            item_status="pending", http_status=200, parts=text_only,
            grounding={"webSearchQueries": ["first try"]},
        ),
    )  # fmt: skip
    store.finish_attempt(
        store.begin_attempt(item.id, run, 2),
        item.id,
        AttemptResult(
            outcome="success", reason="", item_status="succeeded", http_status=200,
            outputs=["images/a.png"], parts=PARTS, grounding=GROUNDING,
        ),
    )  # fmt: skip
    first, second = store.attempt_rows(job)
    assert json.loads(first["parts_json"]) == text_only
    assert json.loads(first["grounding_json"]) == {"webSearchQueries": ["first try"]}
    assert json.loads(second["parts_json"]) == PARTS
    assert json.loads(second["grounding_json"]) == GROUNDING
    # the item (and so the manifest) carries the grounding of its success only
    (row,) = store.manifest_rows(job)
    assert row["grounding"] == GROUNDING


def test_an_answer_without_parts_or_grounding_stores_null(
    store: Store, job: JobRow
) -> None:
    store.sync_plan(job, [make_item("a")])
    (item,) = store.pending_items(job)
    store.finish_attempt(
        store.begin_attempt(item.id, run_id(store, job), 1),
        item.id,
        AttemptResult(outcome="transient", reason="503", item_status="pending"),
    )
    (attempt,) = store.attempt_rows(job)
    assert (attempt["parts_json"], attempt["grounding_json"]) == (None, None)
    (row,) = store.manifest_rows(job)
    assert row["grounding"] is None


def test_a_later_failure_keeps_the_items_grounding_of_its_success(
    store: Store, job: JobRow
) -> None:
    store.sync_plan(job, [make_item("a")])
    (item,) = store.pending_items(job)
    run = run_id(store, job)
    store.finish_attempt(
        store.begin_attempt(item.id, run, 1),
        item.id,
        AttemptResult(
            outcome="success", reason="", item_status="succeeded",
            outputs=["images/a.png"], grounding=GROUNDING,
        ),
    )  # fmt: skip
    store.requeue(job, ["succeeded"])
    store.finish_attempt(
        store.begin_attempt(item.id, run, 2),
        item.id,
        AttemptResult(outcome="fatal_item", reason="400", item_status="failed"),
    )
    (row,) = store.manifest_rows(job)
    assert (row["outputs"], row["grounding"]) == (["images/a.png"], GROUNDING)


def test_attempts_are_ended_with_the_same_statements_however_many_there_are(
    store: Store, job: JobRow
) -> None:
    """The hot write path: a batch of ends costs a fixed number of statements
    (executemany), whatever the batch size; parts and grounding ride along."""
    store.sync_plan(job, [make_item(f"p{n}", position=n) for n in range(9)])
    work = store.pending_items(job)
    run = run_id(store, job)
    started = store.record_attempts([AttemptStart(w.id, run, 1) for w in work])
    done = AttemptResult(
        outcome="success", reason="", item_status="succeeded", http_status=200,
        outputs=["images/x.png"], parts=PARTS, grounding=GROUNDING,
    )  # fmt: skip
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.split()[0])

    ends = [
        AttemptEnd(a, w.id, done)
        for a, w in zip([a for a in started if a is not None], work, strict=True)
    ]
    store.record_attempts(ends[:1])  # the first makes the job's totals row
    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        store.record_attempts(ends[1:2])
        one = list(statements)
        statements.clear()
        store.record_attempts(ends[2:])
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)
    assert statements == one
    assert all(json.loads(a["parts_json"]) == PARTS for a in store.attempt_rows(job))
