r"""Kill soak: SIGKILL the runner at random moments, resume, and check what is left.

A job of N distinct prompts runs against the simulated API with mixed injected faults;
the runner (a child process) is killed with SIGKILL `--kills` times and resubmitted
after each kill, then run to the end. The checks: every item terminal, every image
decodes with Pillow, manifest and store agree, no temp file left, the API key in no
file or log, and images paid twice (a body the server answered with an image more
than once) at most the items in flight at the kills. About 25 s:

    .venv/bin/python benchmarks/soak.py --items 320 --kills 12 \
        --fault-rate 0.15 --seed 7

Exit code 0 when every check holds, 1 when one does not (the report says which).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from runner.simulate import Fault, SimServer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

REPO = Path(__file__).resolve().parent.parent
JOB_NAME = "soak"
API_KEY = "sk-soak-SECRET-5f0c2b9e7a41d386"
TERMINAL = ("succeeded", "failed", "blocked")
# as `runner status --json` counts them ("simulated": none here, the runs are real)
STATUSES = ("pending", "running", *TERMINAL, "simulated", "in_batch")

# Faults a run survives (none stops the whole run), each with an equal share of
# `fault_rate`. Hints are short so a soak takes seconds, not minutes.
DEFAULT_FAULTS: tuple[Fault, ...] = (
    Fault("429", retry_after=0.2),
    Fault("500"),
    Fault("503", retry_after=0.2),
    Fault("502-relay"),
    Fault("504"),
    Fault("drop"),
    Fault("drop-mid-body"),
    Fault("truncated"),
    Fault("bad-base64"),
    Fault("text-only"),
    Fault("blocked-prompt"),
    Fault("slow", delay=0.4),
)
DEFAULT_LATENCY = 0.2
DEFAULT_JITTER = 0.1
DEFAULT_CONCURRENCY = 8
DEFAULT_MAX_ATTEMPTS = 6
STARTUP_KILL_SHARE = 0.2  # kills aimed at start-up (plan sync, recovery) not sending
MAX_KILL_WINDOW = 1.5  # seconds of sending before a kill, at most
RUN_TIMEOUT = 300.0
MAX_SELF_EXITS = 3  # runs in a row ending before their kill: the runner is broken


@dataclass(frozen=True, slots=True)
class Kill:
    """One SIGKILL: when, and what was in flight."""

    after: float  # seconds after spawn
    sending: bool  # the run had started sending requests
    # Attempts are counted once: one a dead run left open stays open until the next
    # run recovers it, and a kill before that must not count it again.
    in_flight_before: int  # attempts begun and not finished just before the kill
    server_in_flight: int  # requests the simulator was answering just before
    in_flight: int  # attempts the killed process left open (the bound)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(slots=True)
class SoakReport:
    """Figures and checks of one soak; `ok` when every check holds."""

    items: int
    kills_wanted: int
    fault_rate: float
    seed: int
    workdir: Path
    kills: list[Kill] = field(default_factory=list)
    exits: list[int] = field(default_factory=list)  # runs that ended by themselves
    counts: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    faults_injected: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    images_on_disk: int = 0
    images_undecodable: list[str] = field(default_factory=list)
    orphan_images: list[str] = field(default_factory=list)
    paid_twice: int = 0
    paid_twice_items: list[str] = field(default_factory=list)
    resubmit_requests: int = 0  # sent by a submit after the job was complete
    wall_time: float = 0.0
    checks: list[Check] = field(default_factory=list)

    @property
    def in_flight_at_kills(self) -> int:
        return sum(k.in_flight for k in self.kills)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def render(self) -> str:
        """The report as printed: figures first, then one line per check."""
        share = self.faults_injected / self.requests if self.requests else 0.0
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.by_kind.items()))
        statuses = ", ".join(f"{s} {self.counts.get(s, 0)}" for s in STATUSES)
        lines = [
            f"soak: {self.items} items, {len(self.kills)}/{self.kills_wanted} kills, "
            f"fault rate {self.fault_rate:g}, seed {self.seed}",
            f"  workdir                 {self.workdir}",
            f"  wall time               {self.wall_time:.1f} s",
            f"  runs                    {len(self.kills)} killed, "
            f"{len(self.exits)} ended by themselves (exit codes {self.exits})",
            f"  kills while sending     {sum(k.sending for k in self.kills)}",
            f"  items by status         {statuses}",
            f"  requests received       {self.requests}",
            f"  faults injected         {self.faults_injected} ({share:.1%})",
            f"  answers by kind         {kinds}",
            f"  images on disk          {self.images_on_disk} "
            f"({len(self.images_undecodable)} do not decode)",
            f"  images not in manifest  {len(self.orphan_images)}",
            "  in flight at kills      "
            f"{self.in_flight_at_kills} attempts left open "
            f"(server saw {sum(k.server_in_flight for k in self.kills)} requests)",
            f"  images paid twice       {self.paid_twice} "
            f"(image answers beyond the first for one item; bound "
            f"{self.in_flight_at_kills})",
            "  per kill: seconds after spawn, send/boot (a request of this run had "
            "reached the server or not), attempts open before/after, server in flight",
        ]
        lines += [
            f"    {k.after:5.2f}s {'send' if k.sending else 'boot'} "
            f"{k.in_flight_before:2d}/{k.in_flight:2d} {k.server_in_flight:2d}"
            for k in self.kills
        ]
        lines.append("checks")
        for check in self.checks:
            mark = "ok  " if check.ok else "FAIL"
            lines.append(f"  {mark} {check.name}: {check.detail}")
        lines.append("PASS" if self.ok else "FAIL")
        return "\n".join(lines)


def run_soak(
    *,
    items: int,
    kills: int,
    fault_rate: float,
    seed: int,
    workdir: Path,
    faults: Sequence[Fault] = DEFAULT_FAULTS,
    latency: float = DEFAULT_LATENCY,
    latency_jitter: float = DEFAULT_JITTER,
    concurrency: int = DEFAULT_CONCURRENCY,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    min_fault_share: float = 0.0,
    run_timeout: float = RUN_TIMEOUT,
    log: Callable[[str], None] | None = None,
) -> SoakReport:
    """Run the soak in `workdir` (created if missing) and return its report."""
    started = time.monotonic()
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "out"
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    job = _write_job(workdir, items, concurrency, max_attempts)
    report = SoakReport(
        items=items,
        kills_wanted=kills,
        fault_rate=fault_rate,
        seed=seed,
        workdir=workdir,
    )
    say = log or (lambda _: None)
    with SimServer(
        latency=latency,
        latency_jitter=latency_jitter,
        image_scale=0.0625,
        api_key=API_KEY,
        seed=seed,
    ) as sim:
        for fault in fault_rules(faults, fault_rate):
            sim.add_fault(fault)
        runner = _Runner(job, out, logs, sim.url)
        db = out / "runner.db"
        rate = concurrency / max(latency, 0.01)  # items per second, faults aside
        counted: set[int] = set()  # open attempts already counted at a kill
        self_exits = 0  # runs in a row that ended before their kill
        while len(report.kills) < kills and self_exits < MAX_SELF_EXITS:
            counts = _counts(db)
            if sum(counts.values()) and not counts["pending"] + counts["running"]:
                say("the job finished before every kill was made")
                break
            remaining = counts.get("pending", 0) + counts.get("running", 0) or items
            # Spread the kills over the work left so the job outlasts them.
            window = 2 * remaining / rate / (kills - len(report.kills) + 1)
            window = min(MAX_KILL_WINDOW, max(0.05, window))
            outcome = _kill_once(runner, sim, db, rng, window, counted)
            if isinstance(outcome, Kill):
                self_exits = 0
                report.kills.append(outcome)
                say(
                    f"kill {len(report.kills)}: {outcome.after:.2f}s, "
                    f"{outcome.in_flight} attempts left open"
                )
            else:
                self_exits += 1
                report.exits.append(outcome)
                say(f"run ended by itself with exit code {outcome}")
        code = runner.run(timeout=run_timeout)
        report.exits.append(code)
        say(f"final run: exit code {code}")
        # Once everything is terminal, submitting again must send nothing.
        requests_done = sim.stats()["requests"]
        report.exits.append(runner.run(timeout=run_timeout))
        report.resubmit_requests = sim.stats()["requests"] - requests_done
        status_code = runner.status()
        stats = sim.stats()
    report.requests = stats["requests"]
    report.by_kind = dict(stats["by_kind"])
    report.faults_injected = report.requests - report.by_kind.get("ok", 0)
    report.wall_time = time.monotonic() - started
    _check(report, out, logs, stats["bodies"], status_code, min_fault_share)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="SIGKILL the runner at random moments against a faulty simulated "
        "API, resume each time, and check nothing was lost or paid twice.",
        epilog="example: .venv/bin/python benchmarks/soak.py --items 320 --kills 12 "
        "--fault-rate 0.15 --seed 7",
    )
    parser.add_argument("--items", type=int, default=320)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--fault-rate", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency", type=float, default=DEFAULT_LATENCY)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument(
        "--min-fault-share",
        type=float,
        default=0.10,
        help="fail unless at least this share of requests got a fault",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep the job, store and logs here (default: a temp folder, removed "
        "if every check holds)",
    )
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="runner-soak-"))
    report = run_soak(
        items=args.items,
        kills=args.kills,
        fault_rate=args.fault_rate,
        seed=args.seed,
        workdir=workdir,
        latency=args.latency,
        concurrency=args.concurrency,
        min_fault_share=args.min_fault_share,
        log=None if args.quiet else _stderr,
    )
    print(report.render())
    if report.ok and args.workdir is None:
        shutil.rmtree(workdir)
    elif not report.ok:
        print(f"kept for inspection: {workdir} (logs/ holds each run's output)")
    return 0 if report.ok else 1


# -- the runner child process -------------------------------------------------------


class _Runner:
    """Spawns `python -m runner submit` with output captured to numbered log files."""

    def __init__(self, job: Path, out: Path, logs: Path, base_url: str) -> None:
        self.job = job
        self.out = out
        self.logs = logs
        self.base_url = base_url
        self.runs = 0
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("RUNNER_") and k not in _KEY_VARIABLES
        }
        self.env = {**env, "TOKAIFY_API_KEY": API_KEY}

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        command = args or (
            "submit",
            str(self.job),
            "--base-url",
            self.base_url,
            "--output",
            str(self.out),
        )
        self.runs += 1
        stem = self.logs / f"run{self.runs:02d}-{command[0]}"
        with open(f"{stem}.out", "wb") as stdout, open(f"{stem}.err", "wb") as stderr:
            return subprocess.Popen(
                [sys.executable, "-m", "runner", *command],
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=self.env,
                cwd=REPO,
            )

    def run(self, *args: str, timeout: float = RUN_TIMEOUT) -> int:
        """Run to the end; its exit code."""
        with _reaped(self.spawn(*args)) as proc:
            return proc.wait(timeout=timeout)

    def status(self) -> int:
        """`runner status --json`; its stdout is the last `*-status.out` log."""
        return self.run("status", JOB_NAME, "--json", "--output", str(self.out))


@contextmanager
def _reaped(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """Never leave a runner behind, whatever stops the soak (timeouts, Ctrl-C)."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _kill_once(
    runner: _Runner,
    sim: SimServer,
    db: Path,
    rng: random.Random,
    window: float,
    counted: set[int],
) -> Kill | int:
    """Spawn a run and SIGKILL it at a random moment; its exit code if it ended first.

    Most kills land while requests are out (after the first one reaches the server,
    plus up to `window` seconds); some land during start-up.
    """
    requests_before = sim.stats()["requests"]
    with _reaped(runner.spawn()) as proc:
        spawned = time.monotonic()
        if rng.random() < STARTUP_KILL_SHARE:
            deadline = spawned + rng.uniform(0.05, 0.8)
        else:
            deadline = spawned + RUN_TIMEOUT
            while time.monotonic() < deadline and proc.poll() is None:
                if sim.stats()["requests"] > requests_before:
                    deadline = time.monotonic() + rng.uniform(0.0, window)
                    break
                time.sleep(0.01)
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(min(0.01, max(0.0, deadline - time.monotonic())))
        open_before = _open_attempts(db) - counted
        stats = sim.stats()
        killed_at = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        code = proc.wait()
    if code != -signal.SIGKILL:
        return code
    open_after = _open_attempts(db) - counted
    counted |= open_after
    return Kill(
        after=killed_at - spawned,
        sending=stats["requests"] > requests_before,
        in_flight_before=len(open_before),
        server_in_flight=stats["in_flight"],
        in_flight=len(open_after),
    )


def _write_job(folder: Path, items: int, concurrency: int, max_attempts: int) -> Path:
    prompts = "\n".join(
        f"  - 'soak picture {i:04d}, a lighthouse in weather {i % 17}'"
        for i in range(items)
    )
    path = folder / "soak.yaml"
    path.write_text(
        f"name: {JOB_NAME}\n"
        f"concurrency: {concurrency}\n"
        f"max_attempts: {max_attempts}\n"
        "max_unknown_retries: 1\n"
        "samples: 1\n"
        f"prompts:\n{prompts}\n",
        encoding="utf-8",
    )
    return path


def fault_rules(faults: Sequence[Fault], fault_rate: float) -> list[Fault]:
    """Rules tried in order that together fire on `fault_rate` of requests, with an
    equal share each: rule i fires with p / (1 - i p) of what reaches it."""
    if not faults or fault_rate <= 0:
        return []
    share = fault_rate / len(faults)
    rules = []
    for index, fault in enumerate(faults):
        rate = min(1.0, share / (1 - index * share))
        rules.append(
            Fault(
                fault.kind,
                rate=rate,
                retry_after=fault.retry_after,
                delay=fault.delay,
                size=fault.size,
            )
        )
    return rules


# -- reading the store (read-only, independent of runner.store) ---------------------


def _query(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]] | None:
    """Rows, or None while the store or its schema does not exist yet."""
    if not db.exists():
        return None
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            conn.execute("PRAGMA busy_timeout=5000")
            return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:
        return None


def _counts(db: Path) -> dict[str, int]:
    rows = _query(
        db,
        "SELECT i.status, count(*) FROM items i JOIN jobs j ON j.id = i.job_id "
        "WHERE j.name = ? AND i.active = 1 GROUP BY i.status",
        JOB_NAME,
    )
    if rows is None:
        return {}
    counts = dict.fromkeys(STATUSES, 0)
    counts.update({str(status): int(n) for status, n in rows})
    return counts


def _store_items(db: Path) -> dict[str, dict[str, Any]]:
    rows = _query(
        db,
        "SELECT i.key, i.status, i.outputs_json, i.attempts, i.error, i.prompt "
        "FROM items i JOIN jobs j ON j.id = i.job_id "
        "WHERE j.name = ? AND i.active = 1",
        JOB_NAME,
    )
    return {
        key: {
            "status": status,
            "outputs": json.loads(outputs) if outputs else [],
            "attempts": attempts,
            "error": error,
            "prompt": prompt,
        }
        for key, status, outputs, attempts, error, prompt in rows or []
    }


def _abandoned_prompts(db: Path) -> set[str]:
    rows = _query(
        db,
        "SELECT DISTINCT i.prompt FROM attempts a JOIN items i ON i.id = a.item_id "
        "JOIN jobs j ON j.id = i.job_id WHERE j.name = ? AND a.outcome = 'abandoned'",
        JOB_NAME,
    )
    return {str(r[0]) for r in rows or []}


def _open_attempts(db: Path) -> set[int]:
    """Ids of attempts begun and not finished: requests that may be out."""
    rows = _query(
        db,
        "SELECT a.id FROM attempts a JOIN items i ON i.id = a.item_id "
        "JOIN jobs j ON j.id = i.job_id WHERE j.name = ? AND a.ended_at IS NULL",
        JOB_NAME,
    )
    return {int(r[0]) for r in rows or []}


def _attempts_by_prompt(db: Path) -> dict[str, int]:
    rows = _query(
        db,
        "SELECT i.prompt, count(*) FROM attempts a JOIN items i ON i.id = a.item_id "
        "JOIN jobs j ON j.id = i.job_id WHERE j.name = ? GROUP BY i.prompt",
        JOB_NAME,
    )
    return {str(prompt): int(n) for prompt, n in rows or []}


def _resent_after_success(db: Path) -> list[str]:
    """Prompts of items with an attempt begun after one that succeeded."""
    rows = _query(
        db,
        "SELECT DISTINCT i.prompt FROM attempts a JOIN items i ON i.id = a.item_id "
        "JOIN jobs j ON j.id = i.job_id JOIN attempts later ON later.item_id = i.id "
        "AND later.id > a.id WHERE j.name = ? AND a.outcome = 'success'",
        JOB_NAME,
    )
    return sorted(str(r[0]) for r in rows or [])


# -- the checks ---------------------------------------------------------------------


def _check(
    report: SoakReport,
    out: Path,
    logs: Path,
    bodies: dict[str, Any],
    status_code: int,
    min_fault_share: float,
) -> None:
    db = out / "runner.db"
    folder = out / JOB_NAME
    add = report.checks.append
    report.counts = _counts(db)
    total = sum(report.counts.values())

    add(
        Check(
            "kills",
            len(report.kills) >= report.kills_wanted,
            f"{len(report.kills)} SIGKILLs made, {report.kills_wanted} wanted",
        )
    )
    bad_exits = [c for c in report.exits if c not in (0, 1)]
    add(
        Check(
            "exit codes",
            not bad_exits,
            f"runs that ended by themselves exited {report.exits} (0 or 1 expected)",
        )
    )
    traces = sorted(
        p.name for p in logs.glob("*.err") if b"Traceback" in p.read_bytes()
    )
    add(Check("no traceback", not traces, f"tracebacks in {traces or 'no log'}"))
    unfinished = report.counts.get("pending", 0) + report.counts.get("running", 0)
    add(
        Check(
            "every item terminal",
            total == report.items and unfinished == 0,
            f"{total} items of {report.items}, {unfinished} pending or running",
        )
    )

    images = sorted((folder / "images").glob("*")) if folder.is_dir() else []
    report.images_on_disk = len(images)
    report.images_undecodable = [p.name for p in images if not _decodes(p)]
    add(
        Check(
            "images decode",
            not report.images_undecodable,
            f"{len(images) - len(report.images_undecodable)} of {len(images)} decode"
            + (
                f"; broken: {report.images_undecodable[:5]}"
                if report.images_undecodable
                else ""
            ),
        )
    )

    store = _store_items(db)
    manifest = _manifest(folder)
    mismatched = sorted(
        key
        for key in store.keys() | manifest.keys()
        if key not in store
        or key not in manifest
        or any(manifest[key].get(f) != store[key][f] for f in _COMPARED)
    )
    add(
        Check(
            "manifest = store",
            not mismatched and len(manifest) == len(store) == report.items,
            f"{len(manifest)} manifest rows, {len(store)} store items, "
            f"{len(mismatched)} differ in key/{'/'.join(_COMPARED)}"
            + (f": {[k[:8] for k in mismatched[:5]]}" if mismatched else ""),
        )
    )
    referenced = {o for row in store.values() for o in row["outputs"]}
    missing = sorted(o for o in referenced if not (folder / o).is_file())
    succeeded_without = [
        k[:8]
        for k, r in store.items()
        if r["status"] == "succeeded" and not r["outputs"]
    ]
    add(
        Check(
            "outputs exist",
            not missing and not succeeded_without,
            f"{len(referenced)} outputs referenced, {len(missing)} missing, "
            f"{len(succeeded_without)} succeeded items without an output",
        )
    )
    report.orphan_images = sorted(
        p.name for p in images if f"images/{p.name}" not in referenced
    )
    temps = sorted(str(p.relative_to(out)) for p in out.rglob("*.tmp"))
    add(Check("no temp files", not temps, f"{len(temps)} *.tmp left {temps[:5]}"))

    paid = Counter[str]()
    for body in bodies.values():
        paid[body["text"]] += body["succeeded"]
    twice = {text: n - 1 for text, n in paid.items() if n > 1}
    report.paid_twice = sum(twice.values())
    report.paid_twice_items = sorted(twice)
    add(
        Check(
            "paid twice <= in flight at kills",
            report.paid_twice <= report.in_flight_at_kills,
            f"{report.paid_twice} images paid twice, {report.in_flight_at_kills} "
            "attempts in flight at the kills",
        )
    )
    add(
        Check(
            "resubmit sends nothing",
            report.resubmit_requests == 0,
            f"a submit of the finished job sent {report.resubmit_requests} requests",
        )
    )
    resent = _resent_after_success(db)
    add(
        Check(
            "nothing finished sent again",
            not resent,
            f"{len(resent)} items have an attempt after a recorded success"
            + (f": {resent[:3]}" if resent else ""),
        )
    )
    attempts = _attempts_by_prompt(db)
    received = Counter[str]()
    for body in bodies.values():
        received[body["text"]] += body["received"]
    unrecorded = sorted(t for t, n in received.items() if n > attempts.get(t, 0))
    add(
        Check(
            "every request has an attempt row",
            not unrecorded,
            f"{sum(received.values())} requests received, "
            f"{sum(attempts.values())} attempts recorded, {len(unrecorded)} items "
            "got more requests than attempts"
            + (f": {unrecorded[:3]}" if unrecorded else ""),
        )
    )
    unexplained = sorted(set(twice) - _abandoned_prompts(db))
    add(
        Check(
            "each double payment follows a kill",
            not unexplained,
            f"{len(unexplained)} items paid twice without an abandoned attempt"
            + (f": {unexplained[:3]}" if unexplained else ""),
        )
    )

    leaks = sorted(
        str(p)
        for root in (out, logs)
        for p in root.rglob("*")
        if p.is_file() and API_KEY.encode() in p.read_bytes()
    )
    scanned = sum(1 for root in (out, logs) for p in root.rglob("*") if p.is_file())
    add(
        Check(
            "key never written",
            not leaks,
            f"key found in {len(leaks)} of {scanned} files (output and logs)"
            + (f": {leaks[:5]}" if leaks else ""),
        )
    )

    status = _status_json(logs)
    status_counts = {s: int(n) for s, n in (status or {}).get("counts", {}).items()}
    add(
        Check(
            "status --json = store",
            status_code == 0 and status_counts == report.counts,
            f"`runner status --json` exit {status_code}, counts {status_counts}",
        )
    )
    share = report.faults_injected / report.requests if report.requests else 0.0
    add(
        Check(
            "fault share",
            share >= min_fault_share and not report.by_kind.get("unauthorized"),
            f"{share:.1%} of {report.requests} requests faulted "
            f"(at least {min_fault_share:.0%} wanted), "
            f"{report.by_kind.get('unauthorized', 0)} refused for a wrong key",
        )
    )


_COMPARED = ("status", "outputs", "attempts", "error")
_KEY_VARIABLES = ("TOKAIFY_API_KEY", "GEMINI_API_KEY")


def _decodes(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, ValueError, Image.DecompressionBombError):
        return False
    return True


def _manifest(folder: Path) -> dict[str, dict[str, Any]]:
    path = folder / "manifest.jsonl"
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]
    return {str(row["key"]): row for row in rows}


def _status_json(logs: Path) -> dict[str, Any] | None:
    outs = sorted(logs.glob("*-status.out"))
    if not outs:
        return None
    try:
        data = json.loads(outs[-1].read_text("utf-8"))
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
