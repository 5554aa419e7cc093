"""The benchmark harness: what every scenario shares.

The simulated API in its own process, the two contenders in theirs, how CPU, RSS
and wall time are taken, child processes, the printed report and the command line
of `python -m benchmarks.bench`. Must not import a scenario: the entry point hands
the command line its table of scenarios.
"""

from __future__ import annotations

from benchmarks.harness.cli import Options, Scenario
from benchmarks.harness.contenders import (
    RUNNER_CHILD,
    Figures,
    peer_available,
    peer_command,
    run_peer,
    run_runner,
    runner_command,
)
from benchmarks.harness.process import (
    CHILD_TIMEOUT,
    REPO,
    BenchError,
    child_command,
    clean_env,
    median_wall,
    run_child,
    run_logged,
    runner_cli,
)
from benchmarks.harness.report import (
    Section,
    Verdict,
    columns,
    render_verdicts,
    side_by_side,
)
from benchmarks.harness.simulator import (
    SIM_IMAGE_PAD_OPTION,
    SIM_RPM_OPTION,
    SimProcess,
    simulator_options,
)
from benchmarks.harness.workload import MODEL, Sizes, Workload, prompt_texts

__all__ = [
    "CHILD_TIMEOUT",
    "MODEL",
    "REPO",
    "RUNNER_CHILD",
    "SIM_IMAGE_PAD_OPTION",
    "SIM_RPM_OPTION",
    "BenchError",
    "Figures",
    "Options",
    "Scenario",
    "Section",
    "SimProcess",
    "Sizes",
    "Verdict",
    "Workload",
    "child_command",
    "clean_env",
    "columns",
    "median_wall",
    "peer_available",
    "peer_command",
    "prompt_texts",
    "render_verdicts",
    "run_child",
    "run_logged",
    "run_peer",
    "run_runner",
    "runner_cli",
    "runner_command",
    "side_by_side",
    "simulator_options",
]
