"""The runner's child process (`python -m benchmarks.bench _runner`):
`runs.execution.submit_spec` as `runner submit --json` calls it (no progress
display), timed from inside, its figures printed as one JSON line.

The runner is imported after the clock starts, so that "CPU s, imports" is the
runner's own. Must not import the runner at module level.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.harness.measure import cpu, loop_lag, mark, peak_rss_kb, percentiles

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from runner.reports import RunReport
    from runner.scheduler import Progress

# How often the ticker wakes to see how late the event loop lets it.
TICK = 0.01


def main(argv: Sequence[str]) -> int:
    """Submit the job, mark the first request and the last image, print figures."""
    cpu_start, started = cpu(), time.monotonic()
    parser = argparse.ArgumentParser(prog="bench _runner")
    parser.add_argument("--job", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--concurrency", type=int)
    parser.add_argument(
        "--loop-lag",
        action="store_true",
        help="tick in the event loop and report how late it wakes",
    )
    parser.add_argument(
        "--batch-poll",
        type=float,
        help="send through the Batch API, asking for the batches every SECONDS",
    )
    args = parser.parse_args(argv)

    import functools

    import anyio

    from runner import outputs, runs
    from runner.client import Endpoint
    from runner.runs.execution import submit_spec
    from runner.spec import load_job

    imported = mark(started, cpu_start)
    marks: dict[str, dict[str, float]] = {}

    def on_progress(p: Progress) -> None:
        if args.batch_poll is not None:
            _batch_marks(p, marks, started, cpu_start)
        if p.requests and "first_request" not in marks:
            marks["first_request"] = mark(started, cpu_start)
        if p.total and p.finished >= p.total and "last_image" not in marks:
            marks["last_image"] = mark(started, cpu_start)

    spec = load_job(args.job)
    workspace = runs.Workspace(args.out)
    store = workspace.open_store()
    ticks: list[tuple[float, float]] = []
    submit = functools.partial(
        submit_spec,
        spec,
        workspace=workspace,
        store=store,
        endpoint=Endpoint(base_url=args.base_url),
        send=runs.SendOptions(
            concurrency=args.concurrency,
            batch=True if args.batch_poll is not None else None,
        ),
        on_progress=on_progress,
        overrides={"handle_signals": False}
        | ({} if args.batch_poll is None else {"batch_poll": args.batch_poll}),
    )
    try:
        report = anyio.run(
            functools.partial(_with_ticker, submit, ticks, started)
            if args.loop_lag
            else submit
        )
    finally:
        store.close()
    end = mark(started, cpu_start)
    images = sorted((workspace.job_folder(spec.name) / outputs.IMAGES_DIR).glob("*"))
    # Straight from the file: the Store has no per-run query, and a read of every
    # attempt of a 100k-item job would count in this child's CPU.
    with contextlib.closing(sqlite3.connect(args.out / "runner.db")) as conn:
        latencies = sorted(
            float(ms)
            for (ms,) in conn.execute(
                "SELECT latency_ms FROM attempts WHERE run_id = "
                "(SELECT max(id) FROM runs) AND latency_ms IS NOT NULL"
            )
        )
    sent = report.result.progress.total
    figures = {
        "contender": "runner",
        "items": sent,
        "images": len(images),
        "errors": report.status.counts["failed"],
        "imported": imported,
        "first_request": marks.get("first_request", end),
        "last_image": marks.get("last_image", end),
        "end": end,
        "process_cpu": cpu(),
        "maxrss_kb": peak_rss_kb(),
        "exit_code": report.exit_code,
        "counts": report.status.counts,
        "image_file_bytes": images[0].stat().st_size if images else None,
        "latency_ms": percentiles(latencies),
    }
    if args.batch_poll is not None:
        figures["batch_marks"] = {k: v for k, v in marks.items() if k.startswith("b")}
    if args.loop_lag:
        first = marks.get("first_request", end)["wall"]
        last = marks.get("last_image", end)["wall"]
        figures["loop_lag_ms"] = loop_lag(
            [lag for at, lag in ticks if first <= at <= last]
        )
    print(json.dumps(figures), flush=True)
    return 0


def _batch_marks(
    p: Progress, marks: dict[str, dict[str, float]], started: float, cpu_start: float
) -> None:
    """The phases of a Batch API run, each marked once: the run begins
    (`batch_run`), every batch's input is built and the batch recorded
    (`batch_built`), created at the API (`batch_created`: after the upload), and
    seen ended (`batch_ended`: its results are then read and recorded)."""
    states = [b.state for b in p.batches]
    reached = {
        "batch_run": True,
        "batch_built": bool(states),
        "batch_created": bool(states) and all(states),
        "batch_ended": bool(states)
        and all(s.startswith("BATCH_STATE_") and s.split("_")[-1] in _ENDED
                for s in states),
    }  # fmt: skip
    for name, now in reached.items():
        if now and name not in marks:
            marks[name] = mark(started, cpu_start)


_ENDED = ("SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED")


async def _with_ticker(
    submit: Callable[[], Awaitable[RunReport]],
    ticks: list[tuple[float, float]],
    started: float,
) -> RunReport:
    """`submit()` with a task beside it in the same event loop that sleeps TICK
    seconds over and over and notes (when, how late) it woke: the loop's lag."""
    import anyio

    async def tick() -> None:
        while True:
            before = time.monotonic()
            await anyio.sleep(TICK)
            now = time.monotonic()
            ticks.append((now - started, max(0.0, now - before - TICK)))

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        report = await submit()
        tg.cancel_scope.cancel()
    return report
