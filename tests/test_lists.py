"""Prompts and var values read from list files (`{file: PATH}`), one per line."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from runner.errors import JobSpecError, JobSpecErrors
from runner.plan import build_plan
from runner.spec import MAX_ITEMS, load_job
from tests.e2e import SECRET, invoke, status_json, write_job
from tests.test_spec import assert_refused, refused, unreadable_file

if TYPE_CHECKING:
    from runner.simulate import SimServer


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text)
    return path


# -- what a list file holds ----------------------------------------------------


def test_prompts_from_a_file_skip_blank_and_comment_lines(tmp_path: Path) -> None:
    write(
        tmp_path / "prompts.txt",
        "\ufeff# banners for the launch\n"
        "A cat astronaut, {style}\n"
        "\n"
        "   A lighthouse at dusk   \r\n"
        "  # an indented comment\n"
        "A bowl of {{ramen}}",
    )
    job = load_job(
        write_job(tmp_path, "prompts: {file: prompts.txt}\nvars: {style: [flat]}\n")
    )
    assert [(p.id, p.text, p.placeholders, p.line) for p in job.prompts] == [
        ("p1", "A cat astronaut, {style}", ("style",), 2),
        ("p2", "A lighthouse at dusk", (), 4),
        ("p3", "A bowl of {{ramen}}", (), 6),
    ]


def test_var_values_from_a_file_in_their_order(tmp_path: Path) -> None:
    write(tmp_path / "lists" / "styles.txt", "flat vector\n# no\nisometric 3D\n42\n")
    job = load_job(
        write_job(
            tmp_path,
            """\
            prompts: ["A {style} banner"]
            vars:
              style: {file: lists/styles.txt}
            """,
        )
    )
    assert job.vars == {"style": ("flat vector", "isometric 3D", "42")}


def test_a_file_prompt_plans_the_same_items_as_the_same_prompt_inline(
    tmp_path: Path,
) -> None:
    inline = write_job(
        tmp_path,
        """\
        name: same
        prompts: ["A {style} banner", "A cat, {mood}"]
        vars: {style: [flat, 3D], mood: [calm]}
        aspect_ratios: ["1:1", "16:9"]
        exclude: [{prompt: p2, aspect_ratio: "16:9"}]
        """,
        "inline.yaml",
    )
    write(tmp_path / "prompts.txt", "A {style} banner\nA cat, {mood}\n")
    write(tmp_path / "styles.txt", "flat\n3D\n")
    listed = write_job(
        tmp_path,
        """\
        name: same
        prompts: {file: prompts.txt}
        vars: {style: {file: styles.txt}, mood: [calm]}
        aspect_ratios: ["1:1", "16:9"]
        exclude: [{prompt: p2, aspect_ratio: "16:9"}]
        """,
        "listed.yaml",
    )

    def items(path: Path) -> list[tuple[str, dict[str, object]]]:
        return [(i.key, i.axes()) for i in build_plan(load_job(path)).items]

    assert items(listed) == items(inline)
    assert len(items(inline)) == 5


# -- problems, reported like every other job-file problem ---------------------------


def test_a_missing_list_file_is_refused_at_its_key_with_a_suggestion(
    tmp_path: Path,
) -> None:
    write(tmp_path / "prompts.txt", "A cat\n")
    path = write_job(tmp_path, "name: x\nprompts: {file: prompt.txt}\n")
    assert_refused(
        path,
        2,
        "prompts file 'prompt.txt' not found",
        str(tmp_path / "prompt.txt"),
        "did you mean 'prompts.txt'?",
        "relative to the job file's folder",
    )


def test_a_list_file_that_cannot_be_read_is_refused(tmp_path: Path) -> None:
    unreadable = unreadable_file(tmp_path)
    path = write_job(tmp_path, f"prompts: {{file: '{unreadable}'}}\n")
    assert_refused(path, 1, "cannot be read (permission denied)", "permissions")


def test_a_folder_is_not_a_list_file(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    path = write_job(tmp_path, "prompts: {file: prompts}\n")
    assert_refused(path, 1, "prompts file 'prompts' is a folder")


def test_a_list_file_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    write(tmp_path / "styles.txt", b"flat\ncaf\xe9\n")
    path = write_job(
        tmp_path, "prompts: ['A {style} cat']\nvars:\n  style: {file: styles.txt}\n"
    )
    assert_refused(
        path, 3, "var 'style' file 'styles.txt' is not UTF-8", "byte 0xe9 on its line 2"
    )


@pytest.mark.parametrize("text", ["", "\n  \n", "# only comments\n# here\n"])
def test_a_list_file_without_entries_is_refused(tmp_path: Path, text: str) -> None:
    write(tmp_path / "prompts.txt", text)
    path = write_job(tmp_path, "prompts:\n  file: prompts.txt\n")
    assert_refused(path, 2, "holds no prompts", "lines starting with '#' are skipped")


def test_a_list_file_longer_than_the_item_cap_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "styles.txt", "".join(f"s{n}\n" for n in range(MAX_ITEMS + 1)))
    path = write_job(
        tmp_path, "prompts: ['A {style} cat']\nvars: {style: {file: styles.txt}}\n"
    )
    assert_refused(path, 2, f"holds more than {MAX_ITEMS:,} values", "split the list")


@pytest.mark.parametrize(
    ("body", "line", "hint"),
    [
        ("prompts: {files: p.txt}\n", 1, "unknown prompts key 'files'; did you mean"),
        ("prompts: {}\n", 1, "prompts is a mapping without 'file:'"),
        ("prompts: {file: ''}\n", 1, "the prompts file path is empty"),
        ("prompts: {file: [a.txt]}\n", 1, "the prompts file path must be text"),
    ],
)
def test_a_malformed_file_mapping_is_refused(
    tmp_path: Path, body: str, line: int, hint: str
) -> None:
    assert_refused(write_job(tmp_path, body), line, hint)


def test_problems_inside_a_list_file_are_reported_at_its_own_lines(
    tmp_path: Path,
) -> None:
    write(tmp_path / "lists" / "prompts.txt", "A {style} cat\n\nA {stlye} dog\n")
    write(tmp_path / "lists" / "styles.txt", "flat\n3D\nflat\n")
    path = write_job(
        tmp_path,
        """\
        prompts: {file: lists/prompts.txt}
        vars: {style: {file: lists/styles.txt}}
        aspect_ratios: ["5:3"]
        """,
    )
    error = refused(path)
    assert isinstance(error, JobSpecErrors)
    prompts_file = str(Path(str(tmp_path)) / "lists" / "prompts.txt")
    styles_file = str(Path(str(tmp_path)) / "lists" / "styles.txt")
    # the job file's problems first, then each list file's, each at its line
    assert [(str(e.path), e.line) for e in error.errors] == [
        (str(path), 3),
        (prompts_file, 3),
        (styles_file, 3),
    ]
    lines = str(error).splitlines()
    assert lines[1].startswith(f"{prompts_file} line 3: prompt 'p2' uses {{stlye}}")
    assert "did you mean {style}?" in lines[1]
    assert lines[2] == (
        f"{styles_file} line 3: var 'style' lists 'flat' twice (first on line 1); "
        "remove one"
    )


def test_a_control_character_in_a_list_file_is_refused_at_its_line(
    tmp_path: Path,
) -> None:
    write(tmp_path / "prompts.txt", "A cat\nA\x00dog\n")
    error = refused(write_job(tmp_path, "prompts: {file: prompts.txt}\n"))
    assert (str(error.path), error.line) == (str(tmp_path / "prompts.txt"), 2)
    assert "control character (#x0000); remove it" in str(error)


# -- an edited list file is a changed job ---------------------------------------------


def test_the_source_hash_covers_the_list_files(tmp_path: Path) -> None:
    plain = write_job(tmp_path, "prompts: [A cat]\n", "plain.yaml")
    assert (
        load_job(plain).source_sha256
        == hashlib.sha256(b"prompts: [A cat]\n").hexdigest()
    )
    write(tmp_path / "prompts.txt", "A cat\n")
    path = write_job(tmp_path, "prompts: {file: prompts.txt}\n")
    before = load_job(path).source_sha256
    assert load_job(path).source_sha256 == before
    write(tmp_path / "prompts.txt", "A cat\n# a comment changes the file too\n")
    assert load_job(path).source_sha256 != before


def test_an_edited_prompts_file_is_planned_again_on_submit(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    prompts = write(tmp_path / "prompts.txt", "a red fox\na lighthouse\n")
    job = write_job(tmp_path, "name: listed\nprompts: {file: prompts.txt}\n")

    def submit() -> None:
        result = invoke(
            "submit", job, "--base-url", sim.url, "--output", out,
            env={"TOKAIFY_API_KEY": SECRET},
        )  # fmt: skip
        assert result.exit_code == 0, result.output

    submit()
    assert status_json("listed", out)["counts"]["succeeded"] == 2
    prompts.write_text("a red fox\na lighthouse\na bowl of ramen\n", encoding="utf-8")
    submit()
    assert status_json("listed", out)["counts"]["succeeded"] == 3
    assert sim.stats()["requests"] == 3


def test_list_file_problems_are_collected_with_the_job_files(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        """\
        prompts: {file: missing.txt}
        samples: 0
        """,
    )
    with pytest.raises(JobSpecError) as info:
        load_job(path)
    assert isinstance(info.value, JobSpecErrors)
    assert [e.line for e in info.value.errors] == [1, 2]
