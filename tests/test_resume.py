"""A run killed or interrupted mid-way resumes without paying twice for a finished
item: the runner runs in a child process, the simulated API counts every request.

The simulator holds four requests (items 8 to 11) while the test stops the runner.
Slots are granted in plan order, so once they are out, items 0 to 7 have been
answered and nothing after them can be sent: where the run stands when it is
stopped does not depend on timing. The child's progress is read from its store (no
event crosses the process boundary); the states waited for are ones it stays in.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from contextlib import closing
from typing import TYPE_CHECKING

import pytest

from runner.simulate import Fault, SimServer
from tests.e2e import SECRET, manifest, spawn, status_json, write_job

if TYPE_CHECKING:
    from pathlib import Path

N_ITEMS = 30
HELD_FOR = 2.0  # seconds the Ctrl-C test's held answers take (its one time margin)
ANSWERED = {f"picture number {i}" for i in range(8)}
HELD = {f"picture number {i}" for i in range(8, 12)}  # no prompt contains another


def job_file(folder: Path) -> Path:
    prompts = "\n".join(f"  - 'picture number {i}'" for i in range(N_ITEMS))
    return write_job(folder, f"name: resumable\nconcurrency: 4\nprompts:\n{prompts}\n")


def succeeded_texts(db: Path) -> set[str]:
    if not db.exists():
        return set()
    with closing(sqlite3.connect(db)) as conn:
        try:
            rows = conn.execute("SELECT prompt FROM items WHERE status = 'succeeded'")
        except sqlite3.OperationalError:  # the runner is still creating the schema
            return set()
        return {r[0] for r in rows}


def wait_for(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def received_by_text(sim: SimServer) -> dict[str, int]:
    return {b["text"]: b["received"] for b in sim.stats()["bodies"].values()}


def hold(sim: SimServer, kind: str, delay: float | None = None) -> None:
    """The first request of each HELD item gets `kind` (its resend is answered)."""
    for text in HELD:
        sim.add_fault(Fault(kind, match=text, times=1, delay=delay))


def holding(sim: SimServer, db: Path) -> bool:
    """Items 0-7 are recorded as succeeded and the HELD requests are out."""
    return succeeded_texts(db) >= ANSWERED and HELD <= received_by_text(sim).keys()


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_without_resending_finished_items(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    job = job_file(tmp_path)
    with SimServer(latency=0.15, image_scale=0.0625) as sim:
        hold(sim, "hang")  # until the runner is killed
        env = {"TOKAIFY_API_KEY": SECRET}
        proc = spawn("submit", job, "--base-url", sim.url, "--output", out, env=env)
        db = out / "runner.db"
        wait_for(lambda: holding(sim, db))
        proc.popen.send_signal(signal.SIGKILL)
        code, _, _ = proc.finish(timeout=10)
        assert code == -signal.SIGKILL
        finished_before = succeeded_texts(db)
        sent_before = received_by_text(sim)
        assert finished_before == ANSWERED
        assert sent_before.keys() == ANSWERED | HELD

        code, _, err = spawn(
            "submit", job, "--base-url", sim.url, "--output", out, env=env
        ).finish()
        assert code == 0, err
        sent_after = received_by_text(sim)
        for text in finished_before:
            assert sent_after[text] == sent_before[text] == 1, text
        # Only items in flight at the kill are sent twice.
        resent = {t for t, n in sent_after.items() if n > 1}
        assert resent == HELD
    status = status_json("resumable", out)
    assert status["counts"]["succeeded"] == N_ITEMS
    rows = manifest(out, "resumable")
    assert len(rows) == N_ITEMS
    assert all((out / "resumable" / r["outputs"][0]).is_file() for r in rows)
    assert not list((out / "resumable").rglob("*.tmp"))


@pytest.mark.slow
def test_ctrl_c_stops_dispatching_keeps_finished_items_and_exits_130(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    job = job_file(tmp_path)
    with SimServer(latency=0.3, image_scale=0.0625) as sim:
        # Answered HELD_FOR seconds late: the signal comes while they are out.
        hold(sim, "slow", delay=HELD_FOR)
        env = {"TOKAIFY_API_KEY": SECRET}
        proc = spawn("submit", job, "--base-url", sim.url, "--output", out, env=env)
        db = out / "runner.db"
        wait_for(lambda: holding(sim, db))
        proc.popen.send_signal(signal.SIGINT)
        code, _, err = proc.finish()
        assert code == 130, err
        assert "interrupted" in err and "Traceback" not in err
        requests_at_stop = sim.stats()["requests"]
        assert received_by_text(sim).keys() == ANSWERED | HELD  # nothing new sent
        status = status_json("resumable", out)
        assert status["counts"]["running"] == 0
        # The in-flight requests were allowed to land: nothing was abandoned.
        assert succeeded_texts(db) == ANSWERED | HELD
        assert status["requests"]["unknown"] == 0
        assert len(manifest(out, "resumable")) == N_ITEMS

        code, _, err = spawn(
            "submit", job, "--base-url", sim.url, "--output", out, env=env
        ).finish()
        assert code == 0, err
        assert sim.stats()["requests"] == requests_at_stop + (
            N_ITEMS - status["counts"]["succeeded"]
        )
