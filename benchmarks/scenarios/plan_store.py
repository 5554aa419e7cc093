"""Plan + store at scale: the 100,000-item job file loaded, planned
(`runs.planning.preview_spec`) and stored (`Store.sync_plan`) into a fresh store,
timed by phase in the scale child; the same plan stored again; `runner plan --json`
on the 99%-done job.

Must not build the fixture or judge anything but the plan + store time.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from benchmarks.harness import Verdict, median_wall, runner_cli
from runner.plan import plan_digest
from runner.runs.planning import preview_spec
from runner.spec import load_job

if TYPE_CHECKING:
    from pathlib import Path

    from runner import runs
    from runner.store import JobRow

TARGET_PLAN_STORE_S = 5.0


def plan_and_store(
    job_file: Path, workspace: runs.Workspace
) -> tuple[JobRow, dict[str, Any]]:
    """In the scale child: the job planned and stored as a submit does, timed by
    phase, then stored again; (its row, {"items", "phases", "resync"})."""
    phases: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        phases[name] = now - clock
        clock = now

    spec = load_job(job_file)
    lap("load job")
    store = workspace.open_store()
    lap("open store")
    preview = preview_spec(spec, store)
    lap("plan (preview_spec)")
    job = store.upsert_job(spec.name, str(spec.path), spec.model, {})
    # As a submit does: the plan's digest lets an unchanged resubmit skip planning.
    store.sync_plan(job, preview.plan.items, plan_digest(spec))
    lap("store (sync_plan)")
    started = time.perf_counter()
    store.sync_plan(job, preview.plan.items, plan_digest(spec))
    resync = time.perf_counter() - started
    store.close()
    return job, {"items": len(preview.plan.items), "phases": phases, "resync": resync}


def plan_cli(job_file: Path, out: Path, log: Path) -> float:
    """Wall seconds of `runner plan --json` on the job (one run)."""
    return median_wall(
        [*runner_cli(), "plan", str(job_file), "--json", "--output", str(out)],
        repeat=1,
        log=log,
    )


def lines(built: dict[str, Any]) -> list[str]:
    """The plan + store phases and the second store, as the report prints them."""
    return [
        "  plan + store (library, fresh store):  "
        + ", ".join(f"{k} {v:.2f} s" for k, v in built["phases"].items()),
        "  store the same plan again (an edited job file; an unchanged one skips "
        f"it): "
        f"{built['resync']:.2f} s",
    ]


def plan_cli_line(seconds: float) -> str:
    return f"  `runner plan --json` on the 99%-done job: {seconds:.2f} s"


def verdict(built: dict[str, Any], *, judged: bool, note: str) -> Verdict:
    plan_total = sum(built["phases"].values())
    return Verdict(
        f"plan + store {int(built['items']):,} items",
        f"{plan_total:.2f} s",
        "-",
        f"<= {TARGET_PLAN_STORE_S:g} s",
        plan_total <= TARGET_PLAN_STORE_S if judged else None,
        note,
    )
