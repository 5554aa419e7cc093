"""What the benchmark prints: a scenario's section, the two contenders side by
side, the table of targets, and the machine and revision lines it starts with.

Owns the report's layout (BENCHMARKS.md quotes it verbatim, so it changes only with
it). Must not run or measure anything.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.harness.process import REPO

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from benchmarks.harness.contenders import Figures


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


def side_by_side(runner: Figures, peer: Figures | None, ideal: float) -> list[str]:
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


def columns(
    names: Sequence[str], rows: Sequence[tuple[str, Sequence[str]]]
) -> list[str]:
    """A table of figures already formatted: a label, then one column per name."""
    label = max(len(row[0]) for row in rows) + 2
    widths = [max(12, len(n) + 2) for n in names]
    lines = [
        "  "
        + " " * label
        + "".join(n.rjust(w) for n, w in zip(names, widths, strict=True))
    ]
    for title, values in rows:
        cells = "".join(v.rjust(w) for v, w in zip(values, widths, strict=False))
        lines.append(f"  {title.ljust(label)}{cells}".rstrip())
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


def revision() -> str:
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
