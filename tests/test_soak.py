"""A short kill soak: a faulty simulated API, a runner SIGKILLed at random moments and
resumed, then every item terminal, every image readable, manifest and store in
agreement and no image paid twice beyond what the kills left in flight.
`benchmarks/soak.py` runs the long version."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytest

from benchmarks.soak import DEFAULT_FAULTS, fault_rules, run_soak
from runner.simulate import Fault

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.slow
def test_a_job_killed_again_and_again_ends_complete_and_paid_at_most_once(
    tmp_path: Path,
) -> None:
    report = run_soak(items=60, kills=3, fault_rate=0.2, seed=3, workdir=tmp_path)
    summary = report.render()
    failed = [c.name for c in report.failed_checks()]
    assert report.ok, f"{failed}\n{summary}"

    assert len(report.kills) == 3, summary
    assert any(k.sending and k.in_flight for k in report.kills), summary
    assert report.counts["pending"] == report.counts["running"] == 0, summary
    assert sum(report.counts.values()) == 60, summary
    assert report.images_on_disk == report.counts["succeeded"] > 0, summary
    assert report.images_undecodable == [], summary
    assert report.paid_twice <= report.in_flight_at_kills, summary
    assert report.faults_injected > 0, summary
    assert report.requests >= 60, summary


def test_fault_rules_together_fire_on_the_requested_share_in_equal_parts() -> None:
    rules = fault_rules(DEFAULT_FAULTS, 0.15)
    assert [r.kind for r in rules] == [f.kind for f in DEFAULT_FAULTS]
    reach = 1.0
    shares = []
    for rule in rules:
        shares.append(reach * rule.rate)
        reach *= 1 - rule.rate
    assert math.isclose(1 - reach, 0.15)
    assert all(math.isclose(s, 0.15 / len(rules)) for s in shares)
    assert rules[0].retry_after == DEFAULT_FAULTS[0].retry_after
    assert fault_rules([Fault("500")], 0.0) == []
