"""A run at high concurrency gets the open files it needs, or says why it sends
fewer at once and what to do (`ulimit -n`)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from runner.runs.open_files import BASE_FILES, files_needed, fit_concurrency
from runner.simulate import Fault
from tests.e2e import REPO, SECRET, write_job

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from runner.simulate import SimServer

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="no open-file limit to raise"
)


@pytest.fixture
def soft_limit() -> Iterator[int]:
    """Lowers this process's soft open-file limit to 256 for the test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"the hard limit here ({hard}) is too low to raise toward")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        yield 256
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_run_needs_a_file_per_connection_and_temp_file_and_the_rest() -> None:
    assert files_needed(1024) == BASE_FILES + 2 * (1024 + 4)
    # The simulator of --simulate holds the other end of each connection.
    assert files_needed(1024, simulated=True) == BASE_FILES + 3 * (1024 + 4)


def test_the_soft_limit_is_raised_toward_the_hard_one_when_the_run_needs_it(
    soft_limit: int,
) -> None:
    fit = fit_concurrency(1024)

    assert fit.concurrency == 1024 and fit.warning is None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft >= files_needed(1024) > soft_limit


def test_a_limit_that_suffices_is_left_alone(soft_limit: int) -> None:
    assert fit_concurrency(8).warning is None
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == soft_limit


def submit_in_child(
    tmp_path: Path, sim: SimServer, items: int, limits: tuple[int, int], *args: str
) -> subprocess.CompletedProcess[str]:
    """`runner submit` of `items` prompts against `sim`, in a child process whose
    open-file limits (soft, hard) are `limits`."""

    def set_limits() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, limits)

    prompts = "\n".join(f"  - picture {i}" for i in range(items))
    job = write_job(tmp_path, f"name: many\nprompts:\n{prompts}\n")
    command = [sys.executable, "-m", "runner", "submit", str(job), *args]
    command += ["--base-url", sim.url, "--output", str(tmp_path / "out")]
    return subprocess.run(
        [*command, "--yes", "--no-review"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "TOKAIFY_API_KEY": SECRET},
        preexec_fn=set_limits,  # before exec: the child has no threads yet
        timeout=60,
        check=False,
    )


def test_a_run_past_the_soft_limit_raises_it_and_sends_at_full_concurrency(
    tmp_path: Path, sim: SimServer
) -> None:
    # 300 requests held at once: a connection each, past a soft limit of 256.
    sim.add_fault(Fault("slow", delay=1.0))
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < files_needed(300):
        pytest.skip(f"the hard limit here ({hard}) is too low to raise toward")

    done = submit_in_child(tmp_path, sim, 300, (256, hard), "--concurrency", "300")

    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr
    assert sim.stats()["max_in_flight"] == 300


def test_a_hard_limit_too_low_caps_the_concurrency_with_a_warning(
    tmp_path: Path, sim: SimServer
) -> None:
    sim.add_fault(Fault("slow", delay=0.2))

    done = submit_in_child(tmp_path, sim, 120, (200, 200), "--concurrency", "1024")

    assert done.returncode == 0, done.stderr
    fits = (200 - BASE_FILES) // 2 - 4
    warning = (
        f"warning: concurrency 1024 needs about {files_needed(1024):,} open files "
        f"but this process may open 200: sending {fits} at a time; to send more, "
        f"raise the hard limit (`ulimit -Hn {files_needed(1024)}` as root, or "
        "nofile in /etc/security/limits.conf)"
    )
    assert warning in done.stderr.splitlines()
    assert sim.stats()["requests"] == 120
    assert sim.stats()["max_in_flight"] <= fits
