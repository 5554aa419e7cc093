"""rpm pacing: a simulated requests-per-minute limit (429 with RetryInfo beyond it
in the trailing 60 s) and `rpm:` in the job file; the rate achieved over the run and
the share of requests the server rejected.

Needs the simulator's `--rpm-limit`; reported as not measured (never judged)
without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from benchmarks.harness import (
    SIM_RPM_OPTION,
    Section,
    SimProcess,
    Verdict,
    Workload,
    prompt_texts,
    run_runner,
    simulator_options,
)

if TYPE_CHECKING:
    from pathlib import Path

    from benchmarks.harness import Sizes

TARGET_RPM_SHARE = 0.9
TARGET_RPM_REJECTED = 0.05


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
