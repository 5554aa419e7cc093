r"""Benchmarks: the runner against the script a user would write instead.

The runner is API-bound: it should keep exactly as many requests in flight as allowed
and cost nothing on top. Every scenario starts the simulated API in its own process
(`python -m runner.simulate`) and runs each contender in its own process, so process
CPU time and peak RSS are the contender's alone. The contenders: the runner
(`jobs.submit` in a child, as `runner submit --json` calls it) and
`benchmarks/peer_genai.py` (google-genai's async client under an asyncio semaphore,
one file per image), same workload, same server, one after the other.

- throughput: distinct prompts x samples, 1K images, concurrency 64, latency 300 ms:
  requests/s against the ideal (concurrency / latency), CPU ms per item.
- memory: 4K-size answers of about 20 MB base64 at concurrency 32: peak RSS. The
  PNGs are padded with random bytes (`--image-pad-bytes`); a simulator without that
  option pads the body with a 20 MB text part instead (the 'huge' fault), and the
  report says so.
- scale: a 100,000-item grid: plan + store, `runner status` with 300,000 attempts,
  and a 99%-done job resumed to its first request.
- rpm: a simulated 120 requests-per-minute limit (429 beyond it) and `rpm: 120` in
  the job file: rate achieved and share of requests rejected (needs the
  simulator's `--rpm-limit`; reported as not measured without it).

    .venv/bin/python -m benchmarks.bench            # everything, about 4 minutes
    .venv/bin/python -m benchmarks.bench --quick    # smaller, about a minute
    .venv/bin/python -m benchmarks.bench --only throughput --no-peer

Needs the `bench` dependency group for the peer (`pip install google-genai`); without
it, or with `--no-peer`, only the runner is measured. Exit code 0 when every measured
target holds, 1 when one misses (the report says which).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import importlib.util
import json
import os
import platform
import resource
import select
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from runner.scheduler import Progress

REPO = Path(__file__).resolve().parent.parent
PEER_SCRIPT = REPO / "benchmarks" / "peer_genai.py"
MODEL = "gemini-3.1-flash-image-preview"
CHILD_TIMEOUT = 600.0
RESUME_GRACE = 30.0  # seconds a resumed `runner submit` may take to finish
SIM_START_TIMEOUT = 30.0
# Simulator options the rpm and memory scenarios use; with a simulator that lacks
# them, the report says what it could not measure, or how it measured instead.
SIM_RPM_OPTION = "--rpm-limit"
SIM_IMAGE_PAD_OPTION = "--image-pad-bytes"
HUGE_FAULT_BYTES = 20_000_000  # body size of a 4K-size answer when padded with text
# Bytes added to each 4K PNG when the simulator can pad images: base64 ~20 MB.
IMAGE_PAD_4K = 15_000_000

# Targets (the numbers).
TARGET_IDEAL_SHARE = 0.95
TARGET_CPU_MS_PER_ITEM = 2.0
TARGET_PEAK_RSS_MB = 400.0
TARGET_PLAN_STORE_S = 5.0
TARGET_RESUME_FIRST_REQUEST_S = 1.0
TARGET_STATUS_S = 0.2
TARGET_RPM_SHARE = 0.9
TARGET_RPM_REJECTED = 0.05


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big each scenario is; `quick` and `full` are the two presets."""

    prompts: int = 32  # distinct prompt texts (the simulator caches one canvas each)
    samples: int = 60
    concurrency: int = 64
    latency: float = 0.3
    image_scale: float = 1.0  # simulator's --image-scale for throughput
    memory_prompts: int = 2
    memory_samples: int = 32
    memory_concurrency: int = 32
    scale_items: int = 100_000
    rpm: int = 120
    rpm_items: int = 160
    rpm_concurrency: int = 8

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            prompts=16,
            samples=16,
            memory_prompts=1,
            memory_samples=32,
            scale_items=10_000,
            rpm=600,
            rpm_items=100,
        )


@dataclass(frozen=True, slots=True)
class Workload:
    """One contender run: what to send and how."""

    prompts: int
    samples: int
    concurrency: int
    aspect_ratio: str = "1:1"
    image_size: str = "1K"
    rpm: float | None = None
    name: str = "bench"

    @property
    def items(self) -> int:
        return self.prompts * self.samples


@dataclass(frozen=True, slots=True)
class Figures:
    """What one contender's child process reported, plus the server's view."""

    contender: str
    items: int
    images: int
    errors: int
    imported: dict[str, float]  # wall/cpu seconds since the child's main() began
    first_request: dict[str, float]
    last_image: dict[str, float]
    end: dict[str, float]
    process_cpu: float  # since the interpreter started (imports included)
    maxrss_kb: int
    server: dict[str, Any] = field(default_factory=dict)  # /_sim/stats, trimmed
    sim_cpu: float | None = None  # simulator CPU seconds during the run
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def window(self) -> float:
        """Seconds from the first request sent to the last image written."""
        return max(1e-9, self.last_image["wall"] - self.first_request["wall"])

    @property
    def rate(self) -> float:
        return self.items / self.window

    @property
    def cpu_ms_per_item(self) -> float:
        """Process CPU while sending, per item (start-up excluded)."""
        cpu = self.last_image["cpu"] - self.first_request["cpu"]
        return 1000 * cpu / max(1, self.items)

    @property
    def process_cpu_ms_per_item(self) -> float:
        """All process CPU, start-up and imports included, per item."""
        return 1000 * self.process_cpu / max(1, self.items)

    @property
    def peak_rss_mb(self) -> float:
        return self.maxrss_kb / 1024


@dataclass(frozen=True, slots=True)
class Verdict:
    """One target: the runner's figure, the peer's, the goal, and whether it holds."""

    target: str
    runner: str
    peer: str
    goal: str
    ok: bool | None  # None: not measured, or not judged (quick sizes)
    note: str = ""

    @property
    def mark(self) -> str:
        return {True: "PASS", False: "FAIL", None: "n/a"}[self.ok]


@dataclass(slots=True)
class Section:
    """A scenario's printed lines, verdicts and raw figures (for --json)."""

    title: str
    lines: list[str] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        return "\n".join([self.title, *self.lines])


class BenchError(Exception):
    """A benchmark step that could not run (a child failed, a server did not start)."""


# -- the simulated API in its own process ------------------------------------------


class SimProcess:
    """`python -m runner.simulate` in a child process, driven over HTTP."""

    def __init__(
        self,
        *,
        latency: float,
        image_scale: float = 1.0,
        extra: Sequence[str] = (),
        log: Path | None = None,
    ) -> None:
        self.args = [
            "--port",
            "0",
            "--latency",
            str(latency),
            "--image-scale",
            str(image_scale),
            *extra,
        ]
        self.log = log
        self.url = ""
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SimProcess:
        stderr = self.log.open("ab") if self.log else subprocess.DEVNULL
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "runner.simulate", *self.args],
                cwd=REPO,
                env=_clean_env(),
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        finally:
            if self.log and not isinstance(stderr, int):
                stderr.close()
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], SIM_START_TIMEOUT)
        line = self._proc.stdout.readline().decode() if ready else ""
        if not line.startswith("listening on "):
            self.__exit__(None, None, None)
            raise BenchError(f"the simulator did not start (said {line!r})")
        self.url = line.split()[-1]
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def stats(self) -> dict[str, Any]:
        data = _http_json(f"{self.url}/_sim/stats")
        assert isinstance(data, dict)
        return data

    def requests(self) -> int:
        return int(self.stats()["requests"])

    def reset(self) -> None:
        _http_json(f"{self.url}/_sim/reset", {})

    def add_faults(self, faults: list[dict[str, Any]]) -> None:
        _http_json(f"{self.url}/_sim/faults", faults)

    def cpu(self) -> float | None:
        """The simulator's CPU seconds so far (Linux /proc), None elsewhere."""
        return _proc_cpu(self.pid)

    def warm(self, texts: Sequence[str], aspect_ratio: str, image_size: str) -> None:
        """One request per text, so that no contender pays for first renders."""
        url = f"{self.url}/v1beta/models/{MODEL}:generateContent"

        def send(text: str) -> None:
            body = {
                "contents": [{"role": "user", "parts": [{"text": text}]}],
                "generationConfig": {
                    "responseModalities": ["IMAGE"],
                    "imageConfig": {
                        "aspectRatio": aspect_ratio,
                        "imageSize": image_size,
                    },
                },
            }
            _http_json(url, body, timeout=120)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(send, texts))
        self.reset()


def simulator_options() -> str:
    """The simulator's --help text, to see which options this version has."""
    done = subprocess.run(
        [sys.executable, "-m", "runner.simulate", "--help"],
        cwd=REPO,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout


def peer_available() -> bool:
    """google-genai is installed (the peer runs with this same interpreter)."""
    try:
        return importlib.util.find_spec("google.genai") is not None
    except ModuleNotFoundError:
        return False


# -- contenders ---------------------------------------------------------------------


def prompt_texts(count: int, tag: str = "bench") -> list[str]:
    return [f"{tag} picture {i:03d}, a lighthouse at dusk" for i in range(count)]


def write_job(folder: Path, workload: Workload, texts: Sequence[str]) -> Path:
    """The runner's job file for `workload` (prompts as YAML-safe JSON strings)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        f"name: {workload.name}",
        f"model: {MODEL}",
        f"concurrency: {workload.concurrency}",
        f"samples: {workload.samples}",
        f"aspect_ratios: [{json.dumps(workload.aspect_ratio)}]",
        f"image_sizes: [{json.dumps(workload.image_size)}]",
        "max_attempts: 10",
        "prompts:",
        *(f"  - {json.dumps(t)}" for t in texts),
    ]
    if workload.rpm is not None:
        lines.append(f"rpm: {workload.rpm:g}")
    path = folder / f"{workload.name}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_runner(
    sim: SimProcess,
    workload: Workload,
    folder: Path,
    *,
    texts: Sequence[str],
    faults: Sequence[dict[str, Any]] = (),
) -> Figures:
    """The runner side: `jobs.submit` in a child process against `sim`."""
    shutil.rmtree(folder, ignore_errors=True)  # a fresh store: nothing to resume
    job = write_job(folder, workload, texts)
    command = [
        sys.executable,
        "-m",
        "benchmarks.bench",
        "_runner",
        "--job",
        str(job),
        "--out",
        str(folder / "out"),
        "--base-url",
        sim.url,
        "--concurrency",
        str(workload.concurrency),
    ]
    return _measured(sim, command, folder / "runner.log", faults)


def run_peer(
    sim: SimProcess,
    workload: Workload,
    folder: Path,
    *,
    texts: Sequence[str],
    faults: Sequence[dict[str, Any]] = (),
) -> Figures:
    """The google-genai script, same workload, same server."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    prompts = folder / "prompts.txt"
    prompts.write_text("\n".join(texts) + "\n", encoding="utf-8")
    command = [
        sys.executable,
        str(PEER_SCRIPT),
        "--base-url",
        sim.url,
        "--prompts",
        str(prompts),
        "--samples",
        str(workload.samples),
        "--concurrency",
        str(workload.concurrency),
        "--aspect-ratio",
        workload.aspect_ratio,
        "--image-size",
        workload.image_size,
        "--out",
        str(folder / "images"),
    ]
    return _measured(sim, command, folder / "peer.log", faults)


def _measured(
    sim: SimProcess,
    command: list[str],
    log: Path,
    faults: Sequence[dict[str, Any]],
) -> Figures:
    """Run one contender with fresh server statistics and `faults` installed."""
    sim.reset()
    if faults:
        sim.add_faults(list(faults))
    sim_cpu = sim.cpu()
    report = _run_child(command, log)
    after = sim.cpu()
    stats = sim.stats()
    stats.pop("bodies", None)
    known = {f.name for f in Figures.__dataclass_fields__.values()}
    return Figures(
        **{k: v for k, v in report.items() if k in known},
        server=stats,
        sim_cpu=None if sim_cpu is None or after is None else after - sim_cpu,
        extra={k: v for k, v in report.items() if k not in known},
    )


def _run_child(command: list[str], log: Path) -> dict[str, Any]:
    """Run a child to its end; its last stdout line is a JSON object of figures."""
    with log.open("ab") as err:
        done = subprocess.run(
            command,
            cwd=REPO,
            env=_clean_env(),
            stdout=subprocess.PIPE,
            stderr=err,
            timeout=CHILD_TIMEOUT,
            check=False,
        )
    lines = done.stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        report = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = log.read_text("utf-8", "replace")[-2000:]
        raise BenchError(
            f"{Path(command[1]).name} {command[2]} exited {done.returncode} without "
            f"figures; log {log}:\n{tail}"
        ) from None
    if not isinstance(report, dict):
        raise BenchError(f"{command[:3]} printed {lines[-1]!r}")
    return report


# -- scenarios ----------------------------------------------------------------------


def run_throughput(
    sizes: Sizes, workdir: Path, *, peer: bool, image_pad: int | None = None
) -> Section:
    """Requests/s and CPU per item, runner vs google-genai, same server."""
    workload = Workload(sizes.prompts, sizes.samples, sizes.concurrency)
    texts = prompt_texts(workload.prompts)
    extra = [SIM_IMAGE_PAD_OPTION, str(image_pad)] if image_pad else []
    folder = workdir / "throughput"
    folder.mkdir(parents=True, exist_ok=True)
    with SimProcess(
        latency=sizes.latency,
        image_scale=sizes.image_scale,
        extra=extra,
        log=folder / "sim.log",
    ) as sim:
        sim.warm(texts, workload.aspect_ratio, workload.image_size)
        runner = run_runner(sim, workload, folder / "runner", texts=texts)
        other = run_peer(sim, workload, folder / "peer", texts=texts) if peer else None
    ideal = workload.concurrency / sizes.latency
    waves = -(-workload.items // workload.concurrency)
    image = runner.extra.get("image_file_bytes")
    section = Section(
        f"throughput: {workload.items} items ({workload.prompts} prompts x "
        f"{workload.samples} samples), {workload.image_size} {workload.aspect_ratio}, "
        f"concurrency {workload.concurrency}, latency {sizes.latency * 1000:.0f} ms"
        + (f", PNGs padded by {image_pad:,} bytes" if image_pad else "")
        + (
            f", simulator --image-scale {sizes.image_scale:g}"
            if sizes.image_scale != 1
            else ""
        )
    )
    section.lines += _side_by_side(runner, other, ideal)
    tail_ideal = workload.items / (waves * sizes.latency)
    section.lines.append(
        f"  ideal with the last partial wave: {tail_ideal:.1f} requests/s "
        f"({waves} waves)" + (f"; image file {image / 1024:.0f} KiB" if image else "")
    )
    goal_rate = TARGET_IDEAL_SHARE * ideal
    section.verdicts += [
        Verdict(
            f"throughput >= {TARGET_IDEAL_SHARE} x ideal, c={workload.concurrency}",
            f"{runner.rate:.1f}/s ({runner.rate / ideal:.3f})",
            f"{other.rate:.1f}/s ({other.rate / ideal:.3f})" if other else "-",
            f">= {goal_rate:.1f}/s",
            runner.rate >= goal_rate,
        ),
        Verdict(
            "throughput >= google-genai script",
            f"{runner.rate:.1f}/s",
            f"{other.rate:.1f}/s" if other else "not run",
            ">= peer",
            runner.rate >= other.rate if other else None,
        ),
        Verdict(
            f"CPU per item ({workload.image_size}), while sending",
            f"{runner.cpu_ms_per_item:.2f} ms",
            f"{other.cpu_ms_per_item:.2f} ms" if other else "-",
            f"<= {TARGET_CPU_MS_PER_ITEM} ms",
            runner.cpu_ms_per_item <= TARGET_CPU_MS_PER_ITEM,
            f"whole process incl. start-up: {runner.process_cpu_ms_per_item:.2f} ms"
            + (f" (peer {other.process_cpu_ms_per_item:.2f})" if other else ""),
        ),
    ]
    section.data = {
        "workload": asdict(workload),
        "latency": sizes.latency,
        "ideal": ideal,
        "runner": _figures_dict(runner),
        "peer": _figures_dict(other) if other else None,
    }
    return section


def run_memory(
    sizes: Sizes, workdir: Path, *, peer: bool, sim_help: str | None = None
) -> Section:
    """Peak RSS with 4K-size answers of about 20 MB base64 each."""
    workload = Workload(
        sizes.memory_prompts,
        sizes.memory_samples,
        sizes.memory_concurrency,
        image_size="4K",
        name="bench4k",
    )
    texts = prompt_texts(workload.prompts, "memory")
    help_text = sim_help if sim_help is not None else simulator_options()
    padded_images = SIM_IMAGE_PAD_OPTION in help_text
    extra = [SIM_IMAGE_PAD_OPTION, str(IMAGE_PAD_4K)] if padded_images else []
    folder = workdir / "memory"
    folder.mkdir(parents=True, exist_ok=True)
    with SimProcess(latency=sizes.latency, extra=extra, log=folder / "sim.log") as sim:
        sim.warm(texts, workload.aspect_ratio, workload.image_size)
        faults = [] if padded_images else [{"kind": "huge", "size": HUGE_FAULT_BYTES}]
        runner = run_runner(
            sim, workload, folder / "runner", texts=texts, faults=faults
        )
        other = (
            run_peer(sim, workload, folder / "peer", texts=texts, faults=faults)
            if peer
            else None
        )
    how = (
        f"each PNG padded by {IMAGE_PAD_4K / 1e6:.0f} MB of random bytes "
        f"(base64 ~{IMAGE_PAD_4K * 4 / 3e6:.0f} MB per answer)"
        if padded_images
        else f"'huge' fault: {HUGE_FAULT_BYTES / 1e6:.0f} MB bodies padded with a TEXT "
        "part, the image itself ~0.3 MB (simulator lacks image padding)"
    )
    section = Section(
        f"memory: {workload.items} items of 4K {workload.aspect_ratio}, concurrency "
        f"{workload.concurrency}, {how}"
    )
    section.lines += _side_by_side(runner, other, workload.concurrency / sizes.latency)
    section.verdicts.append(
        Verdict(
            f"peak RSS, c={workload.concurrency}, 4K-size answers",
            f"{runner.peak_rss_mb:.0f} MB",
            f"{other.peak_rss_mb:.0f} MB" if other else "-",
            f"<= {TARGET_PEAK_RSS_MB:.0f} MB",
            runner.peak_rss_mb <= TARGET_PEAK_RSS_MB,
            "" if padded_images else "bodies padded with text, not image bytes",
        )
    )
    section.data = {
        "workload": asdict(workload),
        "padding": "image" if padded_images else "text (huge fault)",
        "runner": _figures_dict(runner),
        "peer": _figures_dict(other) if other else None,
    }
    return section


def run_scale(sizes: Sizes, workdir: Path, *, judge: bool = True) -> Section:
    """Plan + store, status and resume on a grid of `sizes.scale_items` items."""
    folder = workdir / "scale"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    out = folder / "out"
    job = write_scale_job(folder, sizes.scale_items)
    log = folder / "scale.log"
    built = _run_child(
        [
            sys.executable,
            "-m",
            "benchmarks.bench",
            "_scale",
            "--job",
            str(job),
            "--out",
            str(out),
        ],
        log,
    )
    items, attempts = int(built["items"]), int(built["attempts"])
    mismatch = _fixture_mismatch(out, int(built["done"]), attempts, log)
    floor = _median_wall([sys.executable, "-c", "import runner.cli"], repeat=3, log=log)
    status_cli = _median_wall(
        [*_runner_cli(), "status", "scale", "--json", "--output", str(out)],
        repeat=3,
        log=log,
    )
    plan_cli = _median_wall(
        [*_runner_cli(), "plan", str(job), "--json", "--output", str(out)],
        repeat=1,
        log=log,
    )
    snapshot = folder / "snapshot.db"
    _snapshot(out / "runner.db", snapshot)
    pending = items - int(built["done"])
    with SimProcess(latency=0.05, image_scale=0.0625, log=folder / "sim.log") as sim:
        cli_first, cli_end, cli_code = _resume_cli(sim, job, out, log)
        _restore(snapshot, out / "runner.db")
        sim.reset()
        resumed = _run_child(
            [
                sys.executable,
                "-m",
                "benchmarks.bench",
                "_runner",
                "--job",
                str(job),
                "--out",
                str(out),
                "--base-url",
                sim.url,
                "--concurrency",
                "64",
            ],
            log,
        )
    lib_first = resumed["first_request"]["wall"] - resumed["imported"]["wall"]
    wrap_up = resumed["end"]["wall"] - resumed["last_image"]["wall"]
    section = Section(
        f"scale: a {items:,}-item grid (100 prompts x vars), {attempts:,} attempts, "
        f"{pending:,} items left to send on resume"
    )
    phases = built["phases"]
    if mismatch:
        section.lines.append(f"  ! the fixture does not read back: {mismatch}")
    section.lines += [
        "  plan + store (library, fresh store):  "
        + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()),
        "  store the same plan again (an edited job file; an unchanged one skips "
        f"it): "
        f"{built['resync']:.2f} s",
        f"  status in process (jobs.status, best of 3): {built['status'] * 1000:.0f} ms"
        f" (of which as_dict {built['status_render'] * 1000:.0f} ms)",
        f"  `runner status --json` (median of 3):     {status_cli * 1000:.0f} ms"
        f"   (python -c 'import runner.cli' alone: {floor * 1000:.0f} ms)",
        f"  `runner plan --json` on the 99%-done job: {plan_cli:.2f} s",
        f"  resume, `runner submit` spawned -> first request at the server: "
        f"{cli_first:.2f} s; "
        + (
            f"exit {cli_code} after {cli_end:.2f} s"
            if cli_code is not None
            else f"still running after {cli_end:.0f} s, killed"
        ),
        f"  resume, in process (job file load -> first request sent): "
        f"{lib_first:.2f} s, then {resumed['items']} items in "
        f"{resumed['last_image']['wall'] - resumed['first_request']['wall']:.2f} s, "
        f"then {wrap_up:.2f} s to exit (manifest, gallery)",
    ]
    full = items >= 100_000
    judged = judge and full
    note = "" if full else f"{items:,} items: not judged (target is for 100,000)"
    plan_total = sum(phases.values())
    section.verdicts += [
        Verdict(
            f"plan + store {items:,} items",
            f"{plan_total:.2f} s",
            "-",
            f"<= {TARGET_PLAN_STORE_S:g} s",
            plan_total <= TARGET_PLAN_STORE_S if judged else None,
            note,
        ),
        Verdict(
            "resume 99%-done job: first request",
            f"{cli_first:.2f} s",
            "-",
            f"<= {TARGET_RESUME_FIRST_REQUEST_S:g} s",
            cli_first <= TARGET_RESUME_FIRST_REQUEST_S if judged else None,
            note or f"CLI from spawn; in process {lib_first:.2f} s",
        ),
        Verdict(
            f"`runner status` {items:,} items / {attempts:,} attempts",
            f"{status_cli * 1000:.0f} ms",
            "-",
            f"<= {TARGET_STATUS_S * 1000:.0f} ms",
            status_cli <= TARGET_STATUS_S if judged else None,
            note
            or f"CLI wall; jobs.status in process {built['status'] * 1000:.0f} ms, "
            f"import floor {floor * 1000:.0f} ms",
        ),
    ]
    section.data = {
        **built,
        "status_cli": status_cli,
        "import_floor": floor,
        "plan_cli": plan_cli,
        "resume_cli_first_request": cli_first,
        "resume_cli_exit": cli_end,
        "resume_lib_first_request": lib_first,
        "resume_wrap_up": wrap_up,
    }
    return section


def run_rpm(sizes: Sizes, workdir: Path, *, sim_help: str | None = None) -> Section:
    """A simulated requests-per-minute limit and `rpm:` in the job file."""
    rpm = sizes.rpm
    section = Section(
        f"rpm: a simulated {rpm} requests/minute limit, `rpm: {rpm}` in the job file, "
        f"{sizes.rpm_items} items at concurrency {sizes.rpm_concurrency}"
    )
    help_text = sim_help if sim_help is not None else simulator_options()
    goal = f">= {TARGET_RPM_SHARE} x {rpm}/min, <= {TARGET_RPM_REJECTED:.0%} 429s"
    if SIM_RPM_OPTION not in help_text:
        section.lines.append(
            f"  not measured: simulator lacks rpm limiting ({SIM_RPM_OPTION} N)"
        )
        section.verdicts.append(
            Verdict(
                f"rate under a {rpm} rpm limit",
                "not measured",
                "-",
                goal,
                None,
                f"simulator lacks {SIM_RPM_OPTION}",
            )
        )
        return section
    workload = Workload(
        prompts=sizes.rpm_items,
        samples=1,
        concurrency=sizes.rpm_concurrency,
        rpm=rpm,
        name="benchrpm",
    )
    texts = prompt_texts(workload.prompts, "rpm")
    folder = workdir / "rpm"
    folder.mkdir(parents=True, exist_ok=True)
    with SimProcess(
        latency=sizes.latency,
        image_scale=0.0625,
        extra=[SIM_RPM_OPTION, str(rpm)],
        log=folder / "sim.log",
    ) as sim:
        runner = run_runner(sim, workload, folder / "runner", texts=texts)
    by_status = runner.server.get("by_status", {})
    sent = int(runner.server.get("requests", 0))
    rejected = int(by_status.get("429", 0))
    achieved = runner.images / runner.window * 60
    share = rejected / sent if sent else 0.0
    section.lines += [
        f"  {runner.images} images in {runner.window:.1f} s: {achieved:.1f}/min "
        f"({achieved / rpm:.3f} of the limit)",
        f"  {sent} requests, {rejected} answered 429 ({share:.1%})",
    ]
    section.verdicts.append(
        Verdict(
            f"rate under a {rpm} rpm limit",
            f"{achieved:.1f}/min ({achieved / rpm:.2f}), {share:.1%} 429",
            "-",
            goal,
            achieved >= TARGET_RPM_SHARE * rpm and share <= TARGET_RPM_REJECTED,
        )
    )
    section.data = {"rpm": rpm, "achieved": achieved, "rejected_share": share}
    return section


def write_scale_job(folder: Path, items: int) -> Path:
    """100 prompts x `style` x `subject` vars, `items` cells in all (a multiple of
    100); every rendered prompt differs."""
    per_prompt = max(1, items // 100)
    subjects = min(20, per_prompt)
    styles = max(1, per_prompt // subjects)
    lines = [
        "name: scale",
        f"model: {MODEL}",
        "concurrency: 64",
        "vars:",
        f"  style: [{', '.join(f'style{i:03d}' for i in range(styles))}]",
        f"  subject: [{', '.join(f'subject{i:02d}' for i in range(subjects))}]",
        "prompts:",
        *(f"  - 'scene {p:03d}: a {{subject}} in {{style}}'" for p in range(100)),
    ]
    path = folder / "scale.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _fixture_mismatch(out: Path, done: int, attempts: int, log: Path) -> str | None:
    """What `runner status --json` disagrees with in the bulk-built fixture, if
    anything (a schema change the fixture builder does not know yet)."""
    with log.open("ab") as err:
        done_run = subprocess.run(
            [*_runner_cli(), "status", "scale", "--json", "--output", str(out)],
            cwd=REPO,
            env=_clean_env(),
            stdout=subprocess.PIPE,
            stderr=err,
            timeout=CHILD_TIMEOUT,
            check=False,
        )
    try:
        status = json.loads(done_run.stdout)
        succeeded = int(status["counts"]["succeeded"])
        sent = int(status["requests"]["sent"])
    except (ValueError, KeyError, TypeError):
        return f"`runner status --json` exited {done_run.returncode}; see {log}"
    if succeeded != done or sent != attempts:
        return (
            f"status says {succeeded} succeeded / {sent} requests sent, the fixture "
            f"has {done} / {attempts}"
        )
    return None


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
                *_runner_cli(),
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
            ],
            cwd=REPO,
            env={**_clean_env(), "TOKAIFY_API_KEY": "bench-not-a-key"},
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


def _median_wall(command: list[str], *, repeat: int, log: Path) -> float:
    walls = []
    with log.open("ab") as err:
        for _ in range(repeat):
            started = time.monotonic()
            done = subprocess.run(
                command,
                cwd=REPO,
                env=_clean_env(),
                stdout=subprocess.DEVNULL,
                stderr=err,
                timeout=CHILD_TIMEOUT,
                check=False,
            )
            walls.append(time.monotonic() - started)
            if done.returncode not in (0, 1):
                raise BenchError(f"{command[2:4]} exited {done.returncode}; see {log}")
    return statistics.median(walls)


def _snapshot(db: Path, to: Path) -> None:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copyfile(db, to)


def _restore(snapshot: Path, db: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(snapshot, db)


# -- report -------------------------------------------------------------------------


def _side_by_side(runner: Figures, peer: Figures | None, ideal: float) -> list[str]:
    """The two contenders in columns, with runner/peer ratios."""
    rows: list[tuple[str, Callable[[Figures], float], str]] = [
        ("requests/s", lambda f: f.rate, "{:.1f}"),
        ("ratio to ideal", lambda f: f.rate / ideal, "{:.3f}"),
        ("CPU ms/item, sending", lambda f: f.cpu_ms_per_item, "{:.2f}"),
        ("CPU ms/item, whole process", lambda f: f.process_cpu_ms_per_item, "{:.2f}"),
        ("CPU s, imports", lambda f: f.imported["cpu"], "{:.2f}"),
        (
            "CPU s, imports to 1st request",
            lambda f: f.first_request["cpu"] - f.imported["cpu"],
            "{:.2f}",
        ),
        (
            "s, main() to 1st request",
            lambda f: f.first_request["wall"],
            "{:.2f}",
        ),
        ("s, 1st request to last image", lambda f: f.window, "{:.2f}"),
        (
            "s, last image to exit",
            lambda f: f.end["wall"] - f.last_image["wall"],
            "{:.2f}",
        ),
        ("peak RSS MB", lambda f: f.peak_rss_mb, "{:.0f}"),
        ("server: max in flight", lambda f: f.server.get("max_in_flight", 0), "{:.0f}"),
        ("server: connections", lambda f: f.server.get("connections", 0), "{:.0f}"),
        (
            "simulator CPU, cores",
            lambda f: (f.sim_cpu or 0.0) / f.window,
            "{:.2f}",
        ),
    ]
    lines = [
        f"  {'':32s}{'runner':>12s}{'google-genai' if peer else '':>14s}"
        f"{'runner/peer' if peer else '':>13s}",
        f"  {'ideal requests/s (C/L)':32s}{ideal:12.1f}",
    ]
    for label, get, fmt in rows:
        mine = get(runner)
        line = f"  {label:32s}{fmt.format(mine):>12s}"
        if peer is not None:
            theirs = get(peer)
            ratio = f"{mine / theirs:.2f}" if abs(theirs) >= 0.01 else "-"
            line += f"{fmt.format(theirs):>14s}{ratio:>13s}"
        lines.append(line)
    latency = runner.extra.get("latency_ms")
    if latency:
        lines.append(
            "  runner's recorded request latency: "
            + ", ".join(f"{k} {v:.0f} ms" for k, v in latency.items())
        )
    for name, figures in (("runner", runner), ("google-genai", peer)):
        if figures is not None and (figures.errors or figures.images < figures.items):
            lines.append(
                f"  ! {name}: {figures.images} images for {figures.items} items, "
                f"{figures.errors} errors"
            )
    return lines


def render_verdicts(verdicts: Sequence[Verdict]) -> str:
    """One line per target; notes follow the verdict."""
    head = ("target", "runner", "google-genai", "goal", "")
    rows = [head, *((v.target, v.runner, v.peer, v.goal, v.mark) for v in verdicts)]
    widths = [max(len(row[i]) for row in rows) + 2 for i in range(len(head))]
    lines = ["targets"]
    notes = ["", *(v.note for v in verdicts)]
    for row, note in zip(rows, notes, strict=True):
        line = "  " + "".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
        lines.append(line.rstrip() + (f"  ({note})" if note else ""))
    return "\n".join(lines)


def machine() -> str:
    """nproc, CPU model, RAM, Python, OS: the line BENCHMARKS.md starts with."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ram = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f", {int(line.split()[1]) / 1024 / 1024:.1f} GiB RAM"
    return (
        f"{os.cpu_count()} CPUs ({model}){ram}, Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}"
        f" ({_os_name()})"
    )


def _figures_dict(figures: Figures) -> dict[str, Any]:
    return {
        **asdict(figures),
        "rate": figures.rate,
        "cpu_ms_per_item": figures.cpu_ms_per_item,
        "process_cpu_ms_per_item": figures.process_cpu_ms_per_item,
        "peak_rss_mb": figures.peak_rss_mb,
    }


# -- main ---------------------------------------------------------------------------

SCENARIOS = ("throughput", "memory", "scale", "rpm")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_runner"]:
        return _runner_child(argv[1:])
    if argv[:1] == ["_scale"]:
        return _scale_child(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench",
        description="Measure the runner against a google-genai script on the "
        "simulated API: throughput, CPU per item, peak RSS, 100k-item scale, rpm.",
        epilog="example: .venv/bin/python -m benchmarks.bench --quick",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller runs (about a minute)"
    )
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated scenarios out of {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--no-peer", action="store_true", help="runner side only")
    parser.add_argument("--concurrency", type=int, help="throughput concurrency")
    parser.add_argument("--latency", type=float, help="seconds per answer")
    parser.add_argument("--samples", type=int, help="throughput samples per prompt")
    parser.add_argument(
        "--image-scale", type=float, help="throughput: simulator's --image-scale"
    )
    parser.add_argument(
        "--image-pad-bytes",
        type=int,
        metavar="N",
        help="throughput: add N random bytes to each PNG (e.g. 1500000 for "
        "real 1K sizes)",
    )
    parser.add_argument("--workdir", type=Path, help="keep every file here")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; use {', '.join(SCENARIOS)}")

    sizes = Sizes.quick() if args.quick else Sizes()
    overrides = {
        "concurrency": args.concurrency,
        "latency": args.latency,
        "samples": args.samples,
        "image_scale": args.image_scale,
    }
    sizes = Sizes(
        **{**asdict(sizes), **{k: v for k, v in overrides.items() if v is not None}}
    )
    peer = not args.no_peer and peer_available()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="runner-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    sim_help = simulator_options()
    if args.image_pad_bytes and SIM_IMAGE_PAD_OPTION not in sim_help:
        parser.error(f"this simulator has no {SIM_IMAGE_PAD_OPTION}")

    print(f"machine: {machine()}")
    print(f"runner: {_revision()}")
    print(f"command: python -m benchmarks.bench {' '.join(argv)}".rstrip())
    if not peer:
        print(
            "peer: not run"
            + ("" if args.no_peer else " (google-genai is not installed)")
        )
    started = time.monotonic()
    sections: list[Section] = []
    for name in chosen:
        _stderr(f"running {name} ...")
        began = time.monotonic()
        if name == "throughput":
            section = run_throughput(
                sizes, workdir, peer=peer, image_pad=args.image_pad_bytes
            )
        elif name == "memory":
            section = run_memory(sizes, workdir, peer=peer, sim_help=sim_help)
        elif name == "scale":
            section = run_scale(sizes, workdir, judge=not args.quick)
        else:
            section = run_rpm(sizes, workdir, sim_help=sim_help)
        section.lines.append(f"  ({time.monotonic() - began:.0f} s)")
        sections.append(section)
        print(section.render(), flush=True)
    verdicts = [v for s in sections for v in s.verdicts]
    print(render_verdicts(verdicts))
    kept = f"files in {workdir}" if args.workdir else "--workdir DIR keeps the files"
    print(f"wall time {time.monotonic() - started:.0f} s; {kept}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine(),
                    "quick": args.quick,
                    "sections": {s.title.split(":")[0]: s.data for s in sections},
                    "verdicts": [asdict(v) for v in verdicts],
                },
                indent=2,
            ),
            encoding="utf-8",
        )
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if any(v.ok is False for v in verdicts) else 0


# -- child processes ----------------------------------------------------------------


def _runner_child(argv: Sequence[str]) -> int:
    """`jobs.submit` as `runner submit --json` calls it, timed from inside."""
    cpu_start, started = _cpu(), time.monotonic()
    parser = argparse.ArgumentParser(prog="bench _runner")
    parser.add_argument("--job", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--concurrency", type=int)
    args = parser.parse_args(argv)

    import functools

    import anyio

    from runner import runs
    from runner.client import Endpoint
    from runner.runs.execution import submit_spec
    from runner.spec import load_job

    imported = _mark(started, cpu_start)
    marks: dict[str, dict[str, float]] = {}

    def on_progress(p: Progress) -> None:
        if p.requests and "first_request" not in marks:
            marks["first_request"] = _mark(started, cpu_start)
        if p.total and p.finished >= p.total and "last_image" not in marks:
            marks["last_image"] = _mark(started, cpu_start)

    spec = load_job(args.job)
    workspace = runs.Workspace(args.out)
    store = workspace.open_store()
    try:
        report = anyio.run(
            functools.partial(
                submit_spec,
                spec,
                workspace=workspace,
                store=store,
                endpoint=Endpoint(base_url=args.base_url),
                send=runs.SendOptions(concurrency=args.concurrency),
                on_progress=on_progress,
                overrides={"handle_signals": False},
            )
        )
    finally:
        store.close()
    end = _mark(started, cpu_start)
    images = sorted((workspace.job_folder(spec.name) / "images").glob("*"))
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
        "process_cpu": _cpu(),
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "exit_code": report.exit_code,
        "counts": report.status.counts,
        "image_file_bytes": images[0].stat().st_size if images else None,
        "latency_ms": _percentiles(latencies),
    }
    print(json.dumps(figures), flush=True)
    return 0


def _scale_child(argv: Sequence[str]) -> int:
    """Plan and store a big grid, build a 99%-done fixture with 3 attempts per item,
    and time `jobs.status` on it."""
    parser = argparse.ArgumentParser(prog="bench _scale")
    parser.add_argument("--job", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    from runner import runs
    from runner.plan import plan_digest
    from runner.runs.planning import preview_spec
    from runner.spec import load_job

    phases: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        phases[name] = now - clock
        clock = now

    spec = load_job(args.job)
    lap("load job")
    workspace = runs.Workspace(args.out)
    store = workspace.open_store()
    lap("open store")
    preview = preview_spec(spec, store)
    lap("plan (jobs.preview)")
    job = store.upsert_job(spec.name, str(spec.path), spec.model, {})
    # As a submit does: the plan's digest lets an unchanged resubmit skip planning.
    store.sync_plan(job, preview.plan.items, plan_digest(spec))
    lap("store (sync_plan)")
    started = time.perf_counter()
    store.sync_plan(job, preview.plan.items, plan_digest(spec))
    resync = time.perf_counter() - started
    store.close()

    started = time.perf_counter()
    done, attempts = _build_fixture(args.out / "runner.db", job.id)
    fixture = time.perf_counter() - started

    store = workspace.open_store()
    timings, renders = [], []
    for _ in range(3):
        started = time.perf_counter()
        report = runs.read_status(store, runs.find_job(store, spec.name))
        middle = time.perf_counter()
        report.as_dict()
        timings.append(time.perf_counter() - started)
        renders.append(time.perf_counter() - middle)
    store.close()
    best = timings.index(min(timings))
    print(
        json.dumps(
            {
                "items": len(preview.plan.items),
                "done": done,
                "attempts": attempts,
                "phases": phases,
                "resync": resync,
                "fixture": fixture,
                "status": timings[best],
                "status_render": renders[best],
            }
        ),
        flush=True,
    )
    return 0


def _build_fixture(db: Path, job_id: int) -> tuple[int, int]:
    """Bulk SQL, not the timed path: 99% of items succeeded after two 429/503
    attempts, the rest pending after three transient failures. (items done, attempts)
    """
    from runner.pricing import billed_tokens

    usage = {
        "promptTokenCount": 12,
        "candidatesTokenCount": 1120,
        "thoughtsTokenCount": 180,
        "totalTokenCount": 1312,
        "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 1120}],
    }
    usage_json = json.dumps(usage)
    tokens = billed_tokens(usage)
    names = list(tokens)
    stamp = "2026-01-01T00:00:00+00:00"
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        rows = conn.execute(
            "SELECT id, position, prompt_id, key FROM items WHERE job_id = ?",
            (job_id,),
        ).fetchall()
        run_id = conn.execute(
            "INSERT INTO runs (job_id, command, host, pid, started_at, ended_at, "
            "result) VALUES (?, 'submit', 'bench', 0, ?, ?, 'finished')",
            (job_id, stamp, stamp),
        ).lastrowid
        done = [r for r in rows if r[1] % 100 != 99]
        left = [r for r in rows if r[1] % 100 == 99]

        def output(row: tuple[Any, ...]) -> str:
            return json.dumps([f"images/{row[2]}_1x1_noref_s1_{row[3][:8]}.png"])

        conn.executemany(
            "UPDATE items SET status = 'succeeded', attempts = 3, tries_used = 3, "
            "finish_reason = 'STOP', outputs_json = ?, usage_json = ? WHERE id = ?",
            ((output(r), usage_json, r[0]) for r in done),
        )
        conn.executemany(
            "UPDATE items SET attempts = 3, tries_used = 3, error = ? WHERE id = ?",
            (("503 UNAVAILABLE: The model is overloaded.", r[0]) for r in left),
        )
        columns = (
            "item_id, run_id, number, started_at, ended_at, http_status, outcome, "
            "reason, finish_reason, usage_json, model_version, response_id, "
            "latency_ms, retry_after, outputs_json, images, " + ", ".join(names)
        )
        marks = ", ".join("?" * (16 + len(names)))
        failed = (429, "transient", "429 RESOURCE_EXHAUSTED: slow down")
        busy = (503, "transient", "503 UNAVAILABLE: The model is overloaded.")
        zero = [0] * len(names)

        def attempts() -> Iterator[tuple[Any, ...]]:
            for row in done:
                for number, (code, outcome, reason) in enumerate((failed, busy), 1):
                    yield (row[0], run_id, number, stamp, stamp, code, outcome,
                           reason, None, None, None, None, 900.0, 1.0, None, 0,
                           *zero)  # fmt: skip
                yield (row[0], run_id, 3, stamp, stamp, 200, "success", "", "STOP",
                       usage_json, MODEL, "resp", 9000.0, None, output(row), 1,
                       *tokens.values())  # fmt: skip
            for row in left:
                for number in (1, 2, 3):
                    code, outcome, reason = busy
                    yield (row[0], run_id, number, stamp, stamp, code, outcome,
                           reason, None, None, None, None, 900.0, None, None, 0,
                           *zero)  # fmt: skip

        conn.executemany(
            f"INSERT INTO attempts ({columns}) VALUES ({marks})", attempts()
        )
        count = conn.execute("SELECT count(*) FROM attempts").fetchone()[0]
        _fill_totals(conn, job_id, names)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        # As a real run's automatic checkpoints would have left it: no big WAL.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return len(done), int(count)


def _fill_totals(conn: sqlite3.Connection, job_id: int, tokens: Sequence[str]) -> None:
    """The store's running totals per job and image size, when it keeps them
    (`job_totals`), summed from the bulk-inserted attempts as `finish_attempt`
    would have kept them."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(job_totals)")}
    if not have:
        return
    paid = "a.outcome IN ('unknown', 'abandoned')"
    sums = {
        "attempts": "count(*)",
        "requests": "sum(NOT (a.outcome IN ('transient', 'not_sent') "
        "AND a.http_status IS NULL))",
        "unknown": f"sum({paid})",
        "unpriced": f"sum({paid} AND a.total_tokens = 0)",
        "paid_failed": "sum(a.total_tokens > 0 AND a.outcome != 'success')",
        "images": "sum(a.images)",
        **{name: f"sum(a.{name})" for name in tokens},
    }
    chosen = {k: v for k, v in sums.items() if k in have}
    conn.execute("DELETE FROM job_totals WHERE job_id = ?", (job_id,))
    conn.execute(
        f"INSERT INTO job_totals (job_id, image_size, {', '.join(chosen)}) "
        f"SELECT i.job_id, coalesce(i.image_size, ''), {', '.join(chosen.values())} "
        "FROM attempts a JOIN items i ON i.id = a.item_id WHERE i.job_id = ? "
        "GROUP BY i.job_id, coalesce(i.image_size, '')",
        (job_id,),
    )


# -- helpers ------------------------------------------------------------------------


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _mark(started: float, cpu_start: float) -> dict[str, float]:
    """Seconds since the child's main() began: wall, and process CPU (all threads)."""
    return {"wall": time.monotonic() - started, "cpu": _cpu() - cpu_start}


def _percentiles(values: Sequence[float]) -> dict[str, float] | None:
    """mean, p50, p95 and max of sorted `values`."""
    if not values:
        return None
    return {
        "mean": statistics.fmean(values),
        "p50": values[len(values) // 2],
        "p95": values[min(len(values) - 1, int(len(values) * 0.95))],
        "max": values[-1],
    }


def _proc_cpu(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _http_json(url: str, payload: Any = None, *, timeout: float = 30) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        url,
        data=data,
        headers={"Content-Type": "application/json"},
        method="GET" if data is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def _runner_cli() -> list[str]:
    return [sys.executable, "-m", "runner"]


_KEY_VARIABLES = ("TOKAIFY_API_KEY", "GEMINI_API_KEY")


def _clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RUNNER_") and k not in _KEY_VARIABLES
    }


def _revision() -> str:
    """The commit measured, and whether runner/ had uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "runner"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown revision (no git)"
    return f"commit {head}" + (" with uncommitted changes in runner/" if dirty else "")


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.platform()


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
