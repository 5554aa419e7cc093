"""`runner submit` in a real terminal of 80 columns (tmux): the line before it
sends, the progress bar's counts while requests are held in flight, and what one
and two Ctrl-C presses print, each line whole, with exit code 130.

The simulated API holds the requests of the `held` items (for HELD_FOR seconds, or
until the runner gives up on them), so what the bar shows when it is read, and
what is in flight when Ctrl-C comes, does not depend on timing. The pane is read
with `capture-pane` until what is waited for is there (or a deadline passes).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from runner.simulate import Fault, SimServer
from tests.e2e import REPO, SECRET, status_json, write_job

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)"
)

WIDTH = 80
CONCURRENCY = 3
HELD_FOR = 3.0  # seconds the one-press test's held answers take (its time margin)
DEADLINE = 20.0  # seconds to wait for any one thing on the screen
# The bar once the six quick items are done and the three held ones are out.
HOLDING = re.compile(rf"\d+/12 ok 6 · running {CONCURRENCY} · [\d,]+ tok")


def job_file(folder: Path) -> Path:
    """Six quick items, three held ones, three more that wait for a free slot."""
    prompts = [f"quick {i}" for i in range(6)] + [f"held {i}" for i in range(3)]
    prompts += [f"later {i}" for i in range(3)]
    listed = "\n".join(f"  - {p!r}" for p in prompts)
    return write_job(
        folder, f"name: term\nconcurrency: {CONCURRENCY}\nprompts:\n{listed}\n"
    )


class Pane:
    """One command in a detached tmux session of WIDTH columns, on a server of
    its own (the test's environment, nobody else's sessions)."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.socket = f"runner-test-{os.getpid()}-{time.monotonic_ns()}"
        # Whatever the test process's terminal is, the runner sees only the pane's.
        unset = [f"-u{name}" for name in ("COLUMNS", "LINES", "TTY_INTERACTIVE",
                                          "TTY_COMPATIBLE", "FORCE_COLOR")]  # fmt: skip
        setting = [f"{name}={value}" for name, value in env.items()]
        line = shlex.join(["env", *unset, *setting, *command])
        self.tmux(
            "new-session", "-d", "-s", "t", "-x", str(WIDTH), "-y", "24",
            "bash", "--norc", "--noprofile", "-c",
            f"cd {shlex.quote(str(REPO))} && {line}; echo EXIT=$?; sleep 600",
        )  # fmt: skip
        self.socket_path = self.tmux("display-message", "-p", "#{socket_path}").strip()

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        return done.stdout

    def screen(self) -> list[str]:
        """Every line so far (history too), wrapped lines joined: a line longer
        than the pane shows as one line longer than WIDTH."""
        text = self.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "t")
        return [line.rstrip() for line in text.splitlines()]

    def wait_for(self, pattern: str | re.Pattern[str]) -> list[str]:
        """The screen once a line matches `pattern` (a regex, or text to find)."""
        found = re.compile(re.escape(pattern) if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + DEADLINE
        while True:
            lines = self.screen()
            if any(found.search(line) for line in lines):
                return lines
            if time.monotonic() > deadline:
                shown = "\n".join(lines)
                raise AssertionError(f"{found.pattern!r} not on screen:\n{shown}")
            time.sleep(0.05)

    def ctrl_c(self) -> None:
        self.tmux("send-keys", "-t", "t", "C-c")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], check=False,
                       capture_output=True, timeout=10)  # fmt: skip
        Path(self.socket_path).unlink(missing_ok=True)  # tmux leaves it behind


@pytest.fixture
def pane_for() -> Iterator[list[Pane]]:
    """Panes made in the test, all closed after it."""
    panes: list[Pane] = []
    yield panes
    for pane in panes:
        pane.close()


def submit_in_pane(panes: list[Pane], job: Path, sim: SimServer, out: Path) -> Pane:
    command = [sys.executable, "-m", "runner", "submit", str(job),
               "--base-url", sim.url, "--output", str(out)]  # fmt: skip
    pane = Pane(command, {"TOKAIFY_API_KEY": SECRET})
    panes.append(pane)
    return pane


def exit_code(pane: Pane) -> int:
    lines = pane.wait_for(re.compile(r"^EXIT=\d+$"))
    (code,) = (int(line[5:]) for line in lines if line.startswith("EXIT="))
    return code


def ours(lines: list[str]) -> list[str]:
    """The bar and the Ctrl-C lines (paths elsewhere may be any length)."""
    return [line for line in lines if re.search(r"running \d|interrupted", line)]


def running_counts(lines: list[str]) -> list[int]:
    return [int(n) for line in lines for n in re.findall(r"running (\d+)", line)]


def test_one_ctrl_c_lets_requests_in_flight_land_and_says_so_in_80_columns(
    tmp_path: Path, pane_for: list[Pane]
) -> None:
    out = tmp_path / "out"
    with SimServer(image_scale=0.0625, latency=0.1) as sim:
        sim.add_fault(Fault("slow", match="held", delay=HELD_FOR))
        pane = submit_in_pane(pane_for, job_file(tmp_path), sim, out)
        lines = pane.wait_for(HOLDING)
        assert any(
            re.fullmatch(r"term: 12 items: 12 new; sending 12 \(est\. \$\d+\.\d\d\)", x)
            for x in lines
        ), lines
        assert all(n <= CONCURRENCY for n in running_counts(lines))
        pane.ctrl_c()
        said = (
            "interrupted: finishing 3 requests in flight (Ctrl-C again abandons them)"
        )
        pane.wait_for(said)
        assert exit_code(pane) == 130
        lines = pane.screen()
    assert said in lines
    assert "interrupted: unfinished items stay pending; submit again to resume" in lines
    assert not any("twice" in line or "again:" in line for line in lines)
    assert all(len(line) <= WIDTH for line in ours(lines))
    assert all(n <= CONCURRENCY for n in running_counts(lines))
    # The held requests were let land; the later items were never sent.
    counts = status_json("term", out)["counts"]
    assert (counts["succeeded"], counts["pending"], counts["running"]) == (9, 3, 0)


def test_a_second_ctrl_c_abandons_requests_in_flight_and_the_summary_says_so(
    tmp_path: Path, pane_for: list[Pane]
) -> None:
    out = tmp_path / "out"
    with SimServer(image_scale=0.0625, latency=0.1) as sim:
        sim.add_fault(Fault("hang", match="held"))  # never answered
        pane = submit_in_pane(pane_for, job_file(tmp_path), sim, out)
        pane.wait_for(HOLDING)
        pane.ctrl_c()
        pane.wait_for("interrupted: finishing 3 requests in flight (Ctrl-C again")
        pane.ctrl_c()
        assert exit_code(pane) == 130
        lines = pane.screen()
    assert "interrupted again: abandoning 3 requests in flight" in lines
    end = lines[lines.index("interrupted again: abandoning 3 requests in flight") :]
    assert [line for line in end if line.startswith(("interrupted", "unfinished"))][
        -2:
    ] == [
        "interrupted twice: 3 requests in flight abandoned (possibly billed)",
        "unfinished items stay pending; submit again to resume",
    ]
    assert all(len(line) <= WIDTH for line in ours(lines))
    status = status_json("term", out)
    assert status["counts"]["succeeded"] == 6 and status["counts"]["pending"] == 6
    assert status["requests"]["unknown"] == 3  # abandoned: possibly billed
