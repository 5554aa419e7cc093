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


def test_prompts_and_values_read_from_files_plan_the_pinned_keys(
    tmp_path: Path,
) -> None:
    """The golden job with its prompts and its var in list files: the same keys."""
    job = (GOLDEN / "job.yaml").read_text("utf-8")
    inline_prompts = (
        "prompts:\n"
        "  - id: mug\n"
        '    text: "Put this logo on a ceramic mug, {style}, studio lighting"\n'
        '  - "A plain square"\n'
    )
    inline_vars = "vars:\n  style: [flat vector, isometric 3D]\n"
    assert inline_prompts in job and inline_vars in job
    job = job.replace(inline_prompts, "prompts: {file: prompts.txt}\n")
    job = job.replace(inline_vars, "vars:\n  style: {file: lists/styles.txt}\n")
    # From a file the first prompt's id is p1, not mug; ids are not in the key.
    job = job.replace("{prompt: mug,", "{prompt: p1,")
    job = job.replace("refs/", f"{GOLDEN / 'refs'}/")
    (tmp_path / "prompts.txt").write_text(
        "# the golden prompts\n"
        "Put this logo on a ceramic mug, {style}, studio lighting\n"
        "A plain square\n",
        encoding="utf-8",
    )
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "styles.txt").write_text(
        "flat vector\nisometric 3D\n", encoding="utf-8"
    )
    (tmp_path / "job.yaml").write_text(job, encoding="utf-8")
    plan = build_plan(load_job(tmp_path / "job.yaml"))
    pinned = _pinned()["items"]
    assert isinstance(pinned, list)
    assert [item.key for item in plan.items] == [entry["key"] for entry in pinned]
