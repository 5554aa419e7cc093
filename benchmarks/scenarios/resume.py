"""Resume of the 99%-done job: from spawning `runner submit scale.yaml --yes
--json` to the first request the simulator counts (polled every 5 ms), and the
same resume in process (job-file load to first request). Must not let the first
resume's writes reach the second: each starts from the same snapshot of the store.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import (
    CHILD_TIMEOUT,
    REPO,
    SimProcess,
    Verdict,
    clean_env,
    run_child,
    runner_cli,
    runner_command,
)

TARGET_RESUME_FIRST_REQUEST_S = 1.0
RESUME_GRACE = 30.0  # seconds a resumed `runner submit` may take to finish


@dataclass(frozen=True, slots=True)
class Resume:
    """Seconds from spawn (CLI) or job-file load (in process) to the first request,
    and what followed."""

    cli_first: float
    cli_end: float
    cli_code: int | None  # None: still running RESUME_GRACE s after its first request
    lib_first: float
    lib_items: int
    lib_sending: float  # first request to last image, in process
    wrap_up: float  # last image to exit, in process (manifest, gallery)

    def lines(self) -> list[str]:
        return [
            f"  resume, `runner submit` spawned -> first request at the server: "
            f"{self.cli_first:.2f} s; "
            + (
                f"exit {self.cli_code} after {self.cli_end:.2f} s"
                if self.cli_code is not None
                else f"still running after {self.cli_end:.0f} s, killed"
            ),
            f"  resume, in process (job file load -> first request sent): "
            f"{self.lib_first:.2f} s, then {self.lib_items} items in "
            f"{self.lib_sending:.2f} s, "
            f"then {self.wrap_up:.2f} s to exit (manifest, gallery)",
        ]

    def verdict(self, *, judged: bool, note: str) -> Verdict:
        return Verdict(
            "resume 99%-done job: first request",
            f"{self.cli_first:.2f} s",
            "-",
            f"<= {TARGET_RESUME_FIRST_REQUEST_S:g} s",
            self.cli_first <= TARGET_RESUME_FIRST_REQUEST_S if judged else None,
            note or f"CLI from spawn; in process {self.lib_first:.2f} s",
        )

    def data(self) -> dict[str, float]:
        return {
            "resume_cli_first_request": self.cli_first,
            "resume_cli_exit": self.cli_end,
            "resume_lib_first_request": self.lib_first,
            "resume_wrap_up": self.wrap_up,
        }


def measure_resume(folder: Path, job: Path, out: Path, log: Path) -> Resume:
    """Both resumes of the job stored in `out`, each from the same snapshot."""
    snapshot = folder / "snapshot.db"
    _snapshot(out / "runner.db", snapshot)
    with SimProcess(latency=0.05, image_scale=0.0625, log=folder / "sim.log") as sim:
        cli_first, cli_end, cli_code = _resume_cli(sim, job, out, log)
        _restore(snapshot, out / "runner.db")
        sim.reset()
        resumed = run_child(runner_command(job, out, sim.url, 64), log)
    return Resume(
        cli_first=cli_first,
        cli_end=cli_end,
        cli_code=cli_code,
        lib_first=resumed["first_request"]["wall"] - resumed["imported"]["wall"],
        lib_items=resumed["items"],
        lib_sending=resumed["last_image"]["wall"] - resumed["first_request"]["wall"],
        wrap_up=resumed["end"]["wall"] - resumed["last_image"]["wall"],
    )


def _resume_cli(
    sim: SimProcess, job: Path, out: Path, log: Path
) -> tuple[float, float, int | None]:
    """`runner submit` of a mostly-done job: seconds from spawn to the first request
    the server sees (polled every 5 ms) and to the exit, and the exit code (None:
    still running `RESUME_GRACE` seconds after its first request, so killed)."""
    sim.reset()
    with log.open("ab") as err:
        spawned = time.monotonic()
        proc = subprocess.Popen(
            [
                *runner_cli(),
                "submit",
                str(job),
                "--base-url",
                sim.url,
                "--output",
                str(out),
                "--concurrency",
                "64",
                "--yes",
                "--json",
                # The fixture's images are not on disk; the gallery after a run
                # is the review scenario's.
                "--no-review",
            ],
            cwd=REPO,
            env={**clean_env(), "TOKAIFY_API_KEY": "bench-not-a-key"},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            first = float("nan")
            while proc.poll() is None and time.monotonic() - spawned < CHILD_TIMEOUT:
                if sim.requests() > 0:
                    first = time.monotonic() - spawned
                    break
                time.sleep(0.005)
            code: int | None = None
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = proc.wait(timeout=RESUME_GRACE)
            ended = time.monotonic() - spawned
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return first, ended, code


def _snapshot(db: Path, to: Path) -> None:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copyfile(db, to)


def _restore(snapshot: Path, db: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(snapshot, db)
