"""The two contenders, each run in its own child process against one simulator:
the runner (`submit_spec`, as `runner submit --json` calls it) and the
google-genai script (`benchmarks/peer_genai.py`), with fresh server statistics for each.

Owns how a contender is started and what it reports (`Figures`). Must not judge
the figures or print them.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from benchmarks.harness.process import REPO, child_command, run_child
from benchmarks.harness.workload import write_job

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from benchmarks.harness.simulator import SimProcess
    from benchmarks.harness.workload import Workload

PEER_SCRIPT = REPO / "benchmarks" / "peer_genai.py"
RUNNER_CHILD = "_runner"  # `python -m benchmarks.bench _runner`: runner_child.main


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

    def as_dict(self) -> dict[str, Any]:
        """The fields and the derived figures, for --json."""
        return {
            **asdict(self),
            "rate": self.rate,
            "cpu_ms_per_item": self.cpu_ms_per_item,
            "process_cpu_ms_per_item": self.process_cpu_ms_per_item,
            "peak_rss_mb": self.peak_rss_mb,
        }


def peer_available() -> bool:
    """google-genai is installed (the peer runs with this same interpreter)."""
    try:
        return importlib.util.find_spec("google.genai") is not None
    except ModuleNotFoundError:
        return False


def runner_command(
    job: Path,
    out: Path,
    base_url: str,
    concurrency: int,
    *,
    loop_lag: bool = False,
    batch_poll: float | None = None,
) -> list[str]:
    """The runner's child: submit `job` into `out` against `base_url` (with
    `loop_lag`, a ticker in its event loop measures how late it wakes; with
    `batch_poll`, through the Batch API, polling that often)."""
    return child_command(
        RUNNER_CHILD,
        "--job",
        str(job),
        "--out",
        str(out),
        "--base-url",
        base_url,
        "--concurrency",
        str(concurrency),
        *(["--loop-lag"] if loop_lag else []),
        *([] if batch_poll is None else ["--batch-poll", str(batch_poll)]),
    )


def run_runner(
    sim: SimProcess,
    workload: Workload,
    folder: Path,
    *,
    texts: Sequence[str],
    faults: Sequence[dict[str, Any]] = (),
    loop_lag: bool = False,
    batch_poll: float | None = None,
) -> Figures:
    """The runner side: `submit_spec` in a child process against `sim` (through
    the Batch API with `batch_poll`)."""
    shutil.rmtree(folder, ignore_errors=True)  # a fresh store: nothing to resume
    job = write_job(folder, workload, texts)
    command = runner_command(
        job,
        folder / "out",
        sim.url,
        workload.concurrency,
        loop_lag=loop_lag,
        batch_poll=batch_poll,
    )
    return _measured(sim, command, folder / "runner.log", faults)


def run_peer(
    sim: SimProcess,
    workload: Workload,
    folder: Path,
    *,
    texts: Sequence[str],
    faults: Sequence[dict[str, Any]] = (),
    max_connections: int | None = None,
) -> Figures:
    """The google-genai script, same workload, same server; `max_connections`
    opens its httpx pool that far (as written it keeps httpx's default, 100)."""
    command = peer_command(sim.url, workload, folder, texts, max_connections)
    return _measured(sim, command, folder / "peer.log", faults)


def peer_command(
    base_url: str,
    workload: Workload,
    folder: Path,
    texts: Sequence[str],
    max_connections: int | None = None,
) -> list[str]:
    """The google-genai script's command line for `workload`, into a fresh
    `folder` (its prompts file there, its images in `folder/images`)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    prompts = folder / "prompts.txt"
    prompts.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return [
        sys.executable,
        str(PEER_SCRIPT),
        "--base-url",
        base_url,
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
        *(["--max-connections", str(max_connections)] if max_connections else []),
    ]


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
    report = run_child(command, log)
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
