"""The planner: grid size, exclude/include, and keys that are stable across runs."""

from __future__ import annotations

import itertools
import json
import time
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from runner.errors import JobSpecError
from runner.plan import Request, build_plan, grid_size, plan_digest
from runner.spec import load_job
from tests.e2e import REPO, write_job

if TYPE_CHECKING:
    from pathlib import Path

GOLDEN = REPO / "tests" / "data" / "golden"

GRID = """
    name: grid
    prompts:
      - id: banner
        text: "A {style} banner"
      - id: cat
        text: "A cat, {style}, {light}"
      - id: plain
        text: "A plain square"
    vars:
      style: [flat, iso]
      light: [day, night, dusk]
    aspect_ratios: ["1:1", "16:9"]
    image_sizes: [1K, 2K]
    references:
      - []
      - [refs/a.png]
    samples: 2
"""


def make_refs(folder: Path) -> None:
    (folder / "refs").mkdir(exist_ok=True)
    Image.new("RGB", (8, 8), "blue").save(folder / "refs" / "a.png")
    Image.new("RGB", (8, 8), "green").save(folder / "refs" / "b.png")


def plan_of(folder: Path, body: str, name: str = "job.yaml") -> list[dict[str, object]]:
    make_refs(folder)
    plan = build_plan(load_job(write_job(folder, body, name)))
    return [{"key": i.key, **i.axes()} for i in plan.items]


def test_each_prompt_multiplies_only_over_the_vars_it_uses(tmp_path: Path) -> None:
    items = plan_of(tmp_path, GRID)
    per_cell = 2 * 2 * 2 * 2  # ratios x sizes x reference sets x samples
    assert len(items) == (2 + 2 * 3 + 1) * per_cell
    assert sum(1 for i in items if i["prompt"] == "plain") == per_cell


def test_the_same_file_twice_gives_the_same_keys(tmp_path: Path) -> None:
    first = [i["key"] for i in plan_of(tmp_path, GRID)]
    second = [i["key"] for i in plan_of(tmp_path, GRID)]
    assert first == second
    assert len(set(first)) == len(first)


def test_an_added_aspect_ratio_only_adds_new_keys(tmp_path: Path) -> None:
    before = {i["key"] for i in plan_of(tmp_path, GRID)}
    wider = GRID.replace('["1:1", "16:9"]', '["1:1", "16:9", "21:9"]')
    after = plan_of(tmp_path, wider)
    assert before < {i["key"] for i in after}
    assert {i["aspect_ratio"] for i in after if i["key"] not in before} == {"21:9"}


def test_keys_follow_reference_content_not_paths(tmp_path: Path) -> None:
    before = {i["key"] for i in plan_of(tmp_path, GRID)}
    (tmp_path / "refs" / "a.png").rename(tmp_path / "refs" / "moved.png")
    moved = GRID.replace("refs/a.png", "refs/moved.png")
    assert {i["key"] for i in plan_of(tmp_path, moved)} == before
    Image.new("RGB", (8, 8), "red").save(tmp_path / "refs" / "moved.png")
    changed = {i["key"] for i in plan_of(tmp_path, moved)}
    assert len(changed - before) == len(before) // 2  # only the cells using it


def test_renaming_a_prompt_id_keeps_its_keys(tmp_path: Path) -> None:
    before = {i["key"] for i in plan_of(tmp_path, GRID)}
    after = {
        i["key"] for i in plan_of(tmp_path, GRID.replace("id: banner", "id: hero"))
    }
    assert before == after


def test_exclude_drops_every_cell_it_matches_partially(tmp_path: Path) -> None:
    body = GRID + (
        "    exclude:\n"
        "      - {prompt: cat, light: night}\n"
        '      - {aspect_ratio: "16:9", references: 1}\n'
    )
    items = plan_of(tmp_path, body)
    assert not any(i["prompt"] == "cat" and i["light"] == "night" for i in items)
    assert not any(
        i["aspect_ratio"] == "16:9" and i["references"] == "r1" for i in items
    )
    per_cell = 16
    full = (2 + 6 + 1) * per_cell
    cat_night = 2 * per_cell
    wide_ref = (2 + 4 + 1) * per_cell // 4  # of what is left, 16:9 with ref set 1
    assert len(items) == full - cat_night - wide_ref


SIZES_AND_SAMPLES = """
    name: sizes-and-samples
    prompts:
      - {id: a, text: "An apple"}
      - {id: b, text: "A boat"}
    image_sizes: [1K, 2K]
    samples: 3
"""
# Every (prompt, image_size, sample) cell of SIZES_AND_SAMPLES, written out rather
# than taken from the planner, so an exclude is checked against an independent grid.
EVERY_CELL = set(itertools.product(["a", "b"], ["1K", "2K"], [1, 2, 3]))


def cells_left(folder: Path, exclude: str) -> list[tuple[object, ...]]:
    """(prompt, image_size, sample) of each planned item, sorted; repeats kept."""
    body = SIZES_AND_SAMPLES + f"    exclude:\n      - {exclude}\n"
    items = plan_of(folder, body)
    return sorted((i["prompt"], i["image_size"], i["sample"]) for i in items)


def test_exclude_by_sample_drops_that_sample_of_every_cell(tmp_path: Path) -> None:
    dropped = {("a", "1K", 2), ("a", "2K", 2), ("b", "1K", 2), ("b", "2K", 2)}
    assert cells_left(tmp_path, "{sample: 2}") == sorted(EVERY_CELL - dropped)


def test_exclude_by_image_size_drops_only_that_size(tmp_path: Path) -> None:
    dropped = {("a", "2K", 1), ("a", "2K", 2), ("a", "2K", 3)}
    dropped |= {("b", "2K", 1), ("b", "2K", 2), ("b", "2K", 3)}
    assert cells_left(tmp_path, "{image_size: 2K}") == sorted(EVERY_CELL - dropped)


def test_exclude_by_prompt_size_and_sample_drops_exactly_one_image(
    tmp_path: Path,
) -> None:
    left = cells_left(tmp_path, "{prompt: b, image_size: 2K, sample: 3}")
    assert left == sorted(EVERY_CELL - {("b", "2K", 3)})


def test_include_adds_cells_across_the_axes_it_leaves_out(tmp_path: Path) -> None:
    body = GRID + (
        "    include:\n"
        '      - {prompt: banner, aspect_ratio: "8:1", references: [refs/b.png]}\n'
    )
    items = plan_of(tmp_path, body)
    added = [i for i in items if i["aspect_ratio"] == "8:1"]
    # every style x size x sample, with the new reference set only
    assert len(added) == 2 * 2 * 2
    assert {i["references"] for i in added} == {"r2"}


def test_an_include_matching_existing_cells_adds_nothing(tmp_path: Path) -> None:
    body = GRID + '    include:\n      - {prompt: plain, aspect_ratio: "1:1"}\n'
    assert len(plan_of(tmp_path, body)) == len(plan_of(tmp_path, GRID))


def test_a_sample_index_is_part_of_the_key(tmp_path: Path) -> None:
    items = plan_of(tmp_path, 'prompts: ["x"]\nsamples: 3\n')
    assert [i["sample"] for i in items] == [1, 2, 3]
    assert len({i["key"] for i in items}) == 3


def test_identical_cells_are_planned_once(tmp_path: Path) -> None:
    make_refs(tmp_path)
    plan = build_plan(load_job(write_job(tmp_path, 'prompts: ["same", "same"]\n')))
    assert len(plan.items) == 1 and plan.duplicates == 1


def test_the_demo_job_is_2_prompts_by_3_ratios_by_2_samples() -> None:
    plan = build_plan(load_job(REPO / "jobs" / "demo.yaml"))
    assert len(plan.items) == 12
    assert plan.axis_counts()["aspect_ratio"] == {"16:9": 4, "1:1": 4, "9:16": 4}


def test_the_plan_digest_changes_with_the_file_and_the_reference_content(
    tmp_path: Path,
) -> None:
    make_refs(tmp_path)
    job = write_job(tmp_path, GRID)
    first = plan_digest(load_job(job))
    assert plan_digest(load_job(job)) == first
    Image.new("RGB", (8, 8), "white").save(tmp_path / "refs" / "a.png")
    touched = plan_digest(load_job(job))
    assert touched != first
    job.write_text(job.read_text() + "\n# a comment\n")
    assert plan_digest(load_job(job)) not in (first, touched)


def golden_with(folder: Path, extra: str) -> list[str]:
    """The keys of tests/data/golden/job.yaml with `extra` lines appended."""
    (folder / "refs").mkdir(parents=True)
    for ref in (GOLDEN / "refs").iterdir():
        (folder / "refs" / ref.name).write_bytes(ref.read_bytes())
    text = (GOLDEN / "job.yaml").read_text("utf-8") + extra
    job = folder / "job.yaml"
    job.write_text(text, encoding="utf-8")
    return [item.key for item in build_plan(load_job(job)).items]


def test_tools_change_every_key_and_no_tools_keeps_the_pinned_ones(
    tmp_path: Path,
) -> None:
    pinned = json.loads((GOLDEN / "keys.json").read_text("utf-8"))["items"]
    plain = golden_with(tmp_path / "plain", "tools: []\n")
    assert plain == [entry["key"] for entry in pinned]
    grounded = golden_with(tmp_path / "grounded", "tools: [{google_search: {}}]\n")
    assert len(grounded) == len(plain)
    assert not set(grounded) & set(plain)
    other = golden_with(tmp_path / "other", "tools: [{url_context: {}}]\n")
    assert not set(other) & set(grounded)


def test_tools_are_in_the_canonical_request_only_when_set(tmp_path: Path) -> None:
    make_refs(tmp_path)
    body = 'prompts: ["x"]\ntools: [{google_search: {}}]\n'
    (item,) = build_plan(load_job(write_job(tmp_path, body))).items
    assert item.request.tools == ({"google_search": {}},)
    assert item.request.canonical()["tools"] == [{"google_search": {}}]
    assert Request.from_json(item.request.to_json()) == item.request
    (plain,) = build_plan(load_job(write_job(tmp_path, 'prompts: ["x"]\n'))).items
    assert "tools" not in plain.request.canonical()
    assert "tools" not in json.loads(plain.request.to_json())
    # A request stored before tools existed reads back without them.
    assert Request.from_json(plain.request.to_json()).tools is None


# -- the grid's size, counted before anything is expanded ---------------------------


def test_the_counted_size_is_the_expanded_size_without_exclude_or_include(
    tmp_path: Path,
) -> None:
    make_refs(tmp_path)
    spec = load_job(write_job(tmp_path, GRID))
    size = grid_size(spec)
    assert size.cells == len(build_plan(spec).items) == (2 + 6 + 1) * 16
    assert size.included == 0 and not size.excludes


def test_the_counted_include_cells_are_the_cells_include_names(tmp_path: Path) -> None:
    make_refs(tmp_path)
    body = GRID + (
        "    include:\n"
        "      - {prompt: cat, aspect_ratio: '4:3'}\n"
        "      - {style: neon, references: [refs/b.png], sample: 1}\n"
    )
    spec = load_job(write_job(tmp_path, body))
    size = grid_size(spec)
    # cat x 6 var combos x 1 ratio x 2 sizes x 2 sets x 2 samples; then banner and
    # cat with style fixed (1 and 3 combos) x 2 ratios x 2 sizes x 1 set x 1 sample,
    # and plain (no vars) x the same 4: none of them on the grid before.
    assert size.included == 6 * 2 * 2 * 2 + (1 + 3 + 1) * 2 * 2
    assert len(build_plan(spec).items) == size.cells + size.included


def huge_job(folder: Path, values: int = 100, extra: str = "") -> Path:
    """1 prompt x five vars of `values` values x 2 ratios: 2 * values**5 cells."""
    listed = ", ".join(str(i) for i in range(values))
    axes = "".join(f"  {v}: [{listed}]\n" for v in "abcde")
    return write_job(
        folder,
        "name: huge\nprompts: ['{a} {b} {c} {d} {e}', 'plain']\n"
        f"vars:\n{axes}aspect_ratios: ['1:1', '16:9']\n{extra}",
    )


def test_a_grid_past_the_limit_is_refused_with_its_count_and_axes(
    tmp_path: Path,
) -> None:
    spec = load_job(huge_job(tmp_path))
    started = time.perf_counter()
    with pytest.raises(JobSpecError) as refused:
        build_plan(spec)
    assert time.perf_counter() - started < 1.0
    assert refused.value.message == (
        f"{spec.path}: this job file makes 20,000,000,002 items ((1 prompt x 100 "
        "values of 'a' x 100 values of 'b' x 100 values of 'c' x 100 values of 'd' "
        "x 100 values of 'e' + 1 prompt) x 2 aspect ratios); the limit is 1,000,000 "
        "items per job: remove values from the largest axes, or split the job into "
        "several job files"
    )


def test_the_limit_counts_the_grid_before_exclude_and_every_include_cell(
    tmp_path: Path,
) -> None:
    # 8 * (10**5 + 1) cells are under the limit; include adds as many again.
    at_most = "include: [{aspect_ratio: '4:3'}, {aspect_ratio: '3:4'}]\n"
    with pytest.raises(
        JobSpecError, match="makes 800,008 items .*, plus up to 800,008 from include"
    ):
        build_plan(load_job(huge_job(tmp_path, 10, at_most + "samples: 4\n")))
    excluded = "samples: 6\nexclude: [{a: '1'}]\n"
    with pytest.raises(JobSpecError, match=r"makes up to 1,200,012 items before ex"):
        build_plan(load_job(huge_job(tmp_path, 10, excluded)))
    assert grid_size(load_job(huge_job(tmp_path, 10, at_most))).bound == 400_004
