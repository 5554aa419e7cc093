"""The status fast path: `runner status NAME` reads the SQLite file with sqlite3,
without importing SQLAlchemy, and answers exactly what the store answers; where it
cannot be sure it steps aside and the full store path runs as before."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from runner import reports, runs
from runner.errors import StoreError, StoreFileError
from runner.plan import Item, Request, item_key
from runner.store import AttemptResult, Spend, Store
from runner.store.reader import StoreReader, Unreadable, store_file
from tests.e2e import REPO, SECRET, invoke, write_job

if TYPE_CHECKING:
    from collections.abc import Iterator

    from runner.simulate import SimServer
    from runner.store import JobRow, Status

MODEL = "gemini-3.1-flash-image-preview"
SIZES = (None, "1K", "2K", "4K", "1K", "2K", None, "4K", "512")


def make_item(text: str, image_size: str | None, position: int) -> Item:
    request = Request(
        model=MODEL,
        text=text,
        aspect_ratio="1:1",
        image_size=image_size,
        references=(),
        generation={},
        system_instruction=None,
        safety_settings=None,
    )
    return Item(
        key=item_key(request, 1),
        position=position,
        prompt_id=f"p{position}",
        vars={},
        aspect_ratio="1:1",
        image_size=image_size,
        ref_set=0,
        ref_label="noref",
        sample=1,
        request=request,
    )


def usage(prompt: int, image: int = 0, thoughts: int = 0) -> dict[str, Any]:
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": image,
        "thoughtsTokenCount": thoughts,
        "totalTokenCount": prompt + image + thoughts,
        "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": image}],
    }


def attempt(store: Store, job: JobRow, item_id: int, result: AttemptResult) -> None:
    run = store.start_run(job, "test")
    store.finish_attempt(store.begin_attempt(item_id, run, 1), item_id, result)


def success(tokens: dict[str, Any], image: str) -> AttemptResult:
    return AttemptResult(
        outcome="success", reason="", item_status="succeeded", http_status=200,
        usage=tokens, outputs=[image],
    )  # fmt: skip


UNKNOWN = AttemptResult(
    outcome="unknown", reason="read timeout", item_status="failed",
    counts_as_unknown=True,
)  # fmt: skip


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An output folder whose store holds job `demo` with every kind of item:
    succeeded, blocked, failed (unknown outcomes, a reason shared by two items, no
    reason at all), not sent, abandoned by a dead run, running, pending, and one
    dropped from the plan after it ran; at five image sizes. Another job shares
    the store."""
    out = tmp_path / "out"
    store = Store.for_output(out)
    try:
        job = store.upsert_job(
            "demo", "jobs/demo.yaml", MODEL, {"pricing": {"input_per_million": 1.5}}
        )
        plan = [make_item(f"prompt {n}", size, n) for n, size in enumerate(SIZES)]
        dropped = make_item("dropped later", "2K", 99)
        store.sync_plan(job, [*plan, dropped])
        ids = [w.id for w in store.pending_items(job)]
        attempt(store, job, ids[0], success(usage(12, 1120, 40), "a.png"))
        attempt(store, job, ids[1], success(usage(9, 1120), "b.png"))
        attempt(store, job, ids[2], AttemptResult(
            outcome="blocked", reason="PROHIBITED_CONTENT", item_status="blocked",
            http_status=200, usage=usage(7),
        ))  # fmt: skip
        attempt(store, job, ids[3], UNKNOWN)
        attempt(store, job, ids[4], UNKNOWN)
        attempt(store, job, ids[5], AttemptResult(
            outcome="transient", reason="connect failed", item_status="pending",
            counts_as_try=False,
        ))  # fmt: skip
        store.begin_attempt(ids[5], store.start_run(job, "test"), 2)
        assert store.recover_abandoned(job) == 1  # a dead run left it running
        attempt(store, job, ids[6], AttemptResult(
            outcome="fatal_item", reason="", item_status="failed", http_status=400,
        ))  # fmt: skip
        store.begin_attempt(ids[7], store.start_run(job, "test"), 1)  # running now
        attempt(store, job, ids[9], success(usage(5, 1680), "c.png"))
        store.sync_plan(job, plan)  # `dropped` is no longer part of the job
        other = store.upsert_job("other", None, MODEL)
        store.sync_plan(other, [make_item("elsewhere", "1K", 0)])
        (work,) = store.pending_items(other)
        attempt(store, other, work.id, success(usage(3, 1120), "d.png"))
    finally:
        store.close()
    return out


@pytest.fixture
def store(out: Path) -> Iterator[Store]:
    s = Store.for_output(out)
    yield s
    s.close()


def normal_status(store: Store, name: str = "demo") -> reports.StatusReport:
    row = store.get_job(name)
    assert row is not None
    return runs.read_status(store, row)


# What the fixture recorded for `demo`, counted by hand (not by any code under test):
# every attempt that ended counts, the dropped item's too; the one still running
# does not. Tokens: a (12+1120+40), b (9+1120), the blocked answer (7), c (5+1680).
DEMO = {
    "counts": {
        "pending": 2,
        "running": 1,
        "succeeded": 2,
        "simulated": 0,
        "failed": 3,
        "blocked": 1,
        "in_batch": 0,
    },  # fmt: skip
    "total": 9,
    "usage": {
        "promptTokenCount": 33,
        "candidatesTokenCount": 3920,
        "thoughtsTokenCount": 40,
        "totalTokenCount": 3993,
    },
    # 9 ended attempts, one of them never sent; unknown: two timeouts and the
    # abandoned one; billed without an image: the blocked answer.
    "requests": {"sent": 8, "unknown": 3, "not_sent": 1, "paid_failed": 1},
    "images": 3,
    "unpriced": {"1K": 1, "2K": 1, "4K": 1},  # possibly billed, with no usage
}
OTHER = {  # the other job in the same store: its one success, and nothing of demo's
    "counts": {
        "pending": 0,
        "running": 0,
        "succeeded": 1,
        "simulated": 0,
        "failed": 0,
        "blocked": 0,
        "in_batch": 0,
    },  # fmt: skip
    "total": 1,
    "usage": {
        "promptTokenCount": 3,
        "candidatesTokenCount": 1120,
        "thoughtsTokenCount": 0,
        "totalTokenCount": 1123,
    },
    "requests": {"sent": 1, "unknown": 0, "not_sent": 0, "paid_failed": 0},
    "images": 1,
    "unpriced": {},
}


def test_the_fast_path_reports_what_was_recorded_as_the_store_does(
    out: Path, store: Store
) -> None:
    fast = runs.quick_status(runs.Workspace(out), "demo")
    assert fast is not None
    assert summary(fast.status) == DEMO
    data = fast.as_dict()
    first, *rest = data["failures"]  # most first; the order of ties is not defined
    assert first == {"status": "failed", "reason": "read timeout", "count": 2}
    assert sorted(rest, key=lambda f: f["status"]) == [
        {"status": "blocked", "reason": "PROHIBITED_CONTENT", "count": 1},
        {"status": "failed", "reason": "(no reason recorded)", "count": 1},
    ]
    assert data["cost"]["possibly_billed_usd"] > 0
    assert data["price"]["input_per_million"] == 1.5  # the job's own pricing
    expected = normal_status(store)
    assert data == expected.as_dict()
    assert fast.status == expected.status


def test_the_reader_finds_jobs_as_the_store_does(out: Path, store: Store) -> None:
    with StoreReader(out / "runner.db") as reader:
        for name in ("demo", "other", "nope"):
            assert reader.job(name) == store.get_job(name)
        other = reader.job("other")
        assert other is not None
        status = reader.status(other)
    assert summary(status) == OTHER
    assert status == store.status(other)


def summary(status: Status) -> dict[str, Any]:
    return {
        "counts": status.counts,
        "total": sum(status.counts.values()),
        "usage": status.usage,
        "requests": status.requests,
        "images": status.spend.images,
        "unpriced": status.spend.unpriced,
    }


def test_a_sqlite_db_url_takes_the_fast_path_too(
    out: Path, store: Store, tmp_path: Path
) -> None:
    workspace = runs.Workspace(tmp_path / "elsewhere", f"sqlite:///{out}/runner.db")
    fast = runs.quick_status(workspace, "demo")
    assert fast is not None and fast.as_dict() == normal_status(store).as_dict()


@pytest.mark.parametrize(
    ("db_url", "expected"),
    [
        (None, "root/runner.db"),
        ("", "root/runner.db"),
        ("sqlite:///data/x.db", "data/x.db"),
        ("sqlite:////abs/x.db", "/abs/x.db"),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("sqlite:///x.db?mode=ro&uri=true", None),
        ("sqlite:///my%20store.db", None),
        ("sqlite+pysqlite:///x.db", None),
        ("postgresql://host/db", None),
    ],
)
def test_only_a_plain_sqlite_file_is_read_directly(
    db_url: str | None, expected: str | None
) -> None:
    found = store_file(Path("root"), db_url)
    assert found == (None if expected is None else Path(expected))


def test_a_writer_in_the_middle_of_a_transaction_does_not_hold_status_up(
    out: Path, store: Store
) -> None:
    expected = normal_status(store).as_dict()
    with closing(sqlite3.connect(out / "runner.db", isolation_level=None)) as writer:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE items SET status = 'succeeded'")
        fast = runs.quick_status(runs.Workspace(out), "demo")
        writer.execute("ROLLBACK")
    assert fast is not None and fast.as_dict() == expected


# -- the command in a fresh process -----------------------------------------------


def run_cli(
    *args: str | Path, importtime: bool = False
) -> subprocess.CompletedProcess[str]:
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run(
        [sys.executable, *flags, "-m", "runner", *(str(a) for a in args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "120"},
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "table"])
def test_status_in_a_fresh_process_prints_the_same_without_sqlalchemy(
    sim: SimServer, tmp_path: Path, as_json: bool
) -> None:
    out = tmp_path / "out"
    job = write_job(
        tmp_path,
        """
        name: mixed
        prompts: ["ok", "bad [sim:400]", "blocked [sim:blocked-prompt]",
                  "lost [sim:drop]"]
        image_sizes: ["1K", "2K"]
        max_unknown_retries: 0
        """,
    )
    submitted = invoke(
        "submit", job, "--base-url", sim.url, "--output", out, "--no-review",
        env={"TOKAIFY_API_KEY": SECRET},
    )  # fmt: skip
    assert submitted.exit_code == 1, submitted.output  # some items failed
    flag = ["--json"] if as_json else []
    fast = run_cli("status", "mixed", *flag, "--output", out, importtime=True)
    # sqlite+pysqlite:// is the same file through the full store (SQLAlchemy).
    normal = run_cli(
        "status", "mixed", *flag, "--db", f"sqlite+pysqlite:///{out}/runner.db",
        importtime=True,
    )  # fmt: skip
    assert fast.returncode == normal.returncode == 0, fast.stderr + normal.stderr
    assert "sqlalchemy" not in fast.stderr
    assert "sqlalchemy" in normal.stderr
    assert fast.stdout == normal.stdout
    if as_json:
        data = json.loads(fast.stdout)
        assert data["counts"]["failed"] == 4 and data["counts"]["blocked"] == 2
        assert data["requests"]["unknown"] == 2
    else:
        assert "\nstatus\tcount\treason\n" in fast.stdout  # the failures table


# -- where the fast path steps aside ----------------------------------------------


def test_status_by_an_axis_still_works_and_agrees(out: Path) -> None:
    fast = runs.quick_status(runs.Workspace(out), "demo")
    assert fast is not None
    result = invoke("status", "demo", "--by", "image_size", "--json", "--output", out)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    by_size = data.pop("by")["image_size"]
    assert data == fast.as_dict()
    assert sorted(by_size) == ["(default)", "1K", "2K", "4K", "512"]
    assert by_size["2K"]["items"] == 2  # the dropped 2K item is not counted


def test_spend_per_image_size_counts_every_attempt_at_that_size(store: Store) -> None:
    """`status --by` sums the attempts themselves: also those of the dropped item
    (2K, c.png) and the one still running (4K, sent: counted as a request)."""

    def tokens(prompt: int = 0, image: int = 0, thoughts: int = 0) -> dict[str, int]:
        return {
            "prompt_tokens": prompt,
            "candidates_tokens": image,
            "thoughts_tokens": thoughts,
            "image_tokens": image,
            "total_tokens": prompt + image + thoughts,
        }

    job = store.get_job("demo")
    assert job is not None
    by_size = store.status(job, by=["image_size"]).by_axis["image_size"]
    assert {size: group["spend"] for size, group in by_size.items()} == {
        # a.png; the 400
        "(default)": Spend(attempts=2, requests=2, images=1,
                           tokens=tokens(12, 1120, 40)),
        # b.png; a timeout
        "1K": Spend(attempts=2, requests=2, unknown=1, images=1,
                    tokens=tokens(9, 1120), unpriced={"1K": 1}),
        # blocked; refused before sending, then abandoned; c.png (dropped item)
        "2K": Spend(attempts=4, requests=3, unknown=1, paid_failed=1, images=1,
                    tokens=tokens(7 + 5, 1680), unpriced={"2K": 1}),
        # a timeout; the attempt still running
        "4K": Spend(attempts=2, requests=2, unknown=1, tokens=tokens(),
                    unpriced={"4K": 1}),
        "512": Spend(),  # never sent
    }  # fmt: skip
    assert [by_size[size]["items"] for size in ("(default)", "1K", "2K")] == [2, 2, 2]


def test_an_unknown_job_name_gives_the_usual_error(out: Path) -> None:
    assert runs.quick_status(runs.Workspace(out), "nope") is None
    result = invoke("status", "nope", "--output", out)
    assert result.exit_code == 2
    assert f"no job named 'nope' in the store sqlite:///{out}/runner.db" in (
        result.output
    )


def test_a_missing_store_is_not_created_by_the_reader(tmp_path: Path) -> None:
    with pytest.raises(Unreadable):
        StoreReader(tmp_path / "runner.db")
    assert not (tmp_path / "runner.db").exists()
    missing = tmp_path / "missing"
    assert runs.quick_status(runs.Workspace(missing), "demo") is None
    assert not missing.exists()
    result = invoke("status", "demo", "--output", missing)
    assert result.exit_code == 2 and "no job named 'demo'" in result.output


def test_a_job_file_is_left_to_the_store_path(out: Path, tmp_path: Path) -> None:
    job = write_job(tmp_path, "name: demo\nprompts: ['x']\n", name="demo.yaml")
    assert runs.quick_status(runs.Workspace(out), str(job)) is None
    result = invoke("status", job, "--json", "--output", out)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["job"] == "demo"


def test_a_store_from_a_newer_runner_is_refused_as_before(out: Path) -> None:
    with closing(sqlite3.connect(out / "runner.db")) as conn, conn:
        conn.execute("INSERT INTO _runner_migrations VALUES ('m999_future', 'x')")
    assert runs.quick_status(runs.Workspace(out), "demo") is None
    result = invoke("status", "demo", "--output", out)
    assert result.exit_code == StoreError.exit_code
    assert "newer runner (schema step m999_future)" in result.output


def test_a_store_missing_a_schema_step_is_migrated_by_the_store_path(
    out: Path,
) -> None:
    with closing(sqlite3.connect(out / "runner.db")) as conn, conn:
        conn.execute("DELETE FROM _runner_migrations")
    assert runs.quick_status(runs.Workspace(out), "demo") is None
    result = invoke("status", "demo", "--json", "--output", out)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["succeeded"] == 2
    assert runs.quick_status(runs.Workspace(out), "demo") is not None


@pytest.mark.parametrize(
    "content", [b"this is not sqlite" * 100, b""], ids=["garbage", "empty"]
)
def test_a_file_that_is_not_a_store_is_left_to_the_store_path(
    tmp_path: Path, content: bytes
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "runner.db").write_bytes(content)
    assert runs.quick_status(runs.Workspace(out), "demo") is None
    result = invoke("status", "demo", "--output", out)
    if content:
        assert result.exit_code == StoreFileError.exit_code == 2
        assert "is not a SQLite database" in result.output
        assert "move it aside" in result.output
    else:  # an empty file is an empty SQLite database: the store sets it up
        assert result.exit_code == 2 and "no job named 'demo'" in result.output
