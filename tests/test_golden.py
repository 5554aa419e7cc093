"""Item keys are a promise to every stored job: the same cell always has the same key.

A change to the canonical request JSON (a field added, renamed or re-encoded, a new
default) changes every key, and every job already in a user's store would be sent,
and paid for, again. tests/data/golden/keys.json pins the keys of a fixed job file;
if this test fails, the change needs a migration of stored keys, not a new golden file.
"""

from __future__ import annotations

import json
from pathlib import Path

from runner.plan import build_plan, item_key
from runner.spec import load_job

GOLDEN = Path(__file__).parent / "data" / "golden"


def _pinned() -> dict[str, object]:
    data: dict[str, object] = json.loads((GOLDEN / "keys.json").read_text("utf-8"))
    return data


def test_a_fixed_job_file_plans_exactly_the_pinned_keys() -> None:
    plan = build_plan(load_job(GOLDEN / "job.yaml"))
    got = [{"axes": item.axes(), "key": item.key} for item in plan.items]
    assert got == _pinned()["items"]


def test_the_canonical_request_and_its_hash_are_pinned() -> None:
    example = _pinned()["example"]
    assert isinstance(example, dict)
    plan = build_plan(load_job(GOLDEN / "job.yaml"))
    item = next(i for i in plan.items if i.key == example["key"])
    assert item.request.canonical() == example["canonical"]
    assert item_key(item.request, item.sample) == example["key"]
