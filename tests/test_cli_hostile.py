"""Hostile and mistaken input through the real CLI: each case is refused before any
request is sent, with one line naming the file, the line and what to fix; nothing is
written at all (not even output/, and not next to it, where a job name with '..'
would land); the API key shows up nowhere."""

from __future__ import annotations

import io
import re
import time
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from tests.e2e import SECRET, invoke, spawn, write_job

if TYPE_CHECKING:
    from pathlib import Path

    from runner.simulate import SimServer

NAME_RULE = (
    "letters, digits, '.', '_' and '-' only, starting with a letter or digit, at "
    "most 100 characters, no '..'"
)


def png(path: Path, size: tuple[int, int] = (8, 8)) -> Path:
    Image.new("RGB", size, "teal").save(path)
    return path


def make_files(folder: Path) -> None:
    png(folder / "ok.png")
    (folder / "adir.png").mkdir()
    (folder / "notes.png").write_text("not an image")
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buf, format="PNG")
    (folder / "cut.png").write_bytes(buf.getvalue()[:60])
    Image.new("1", (12_000, 12_000)).save(folder / "bomb.png")
    (folder / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * (8 << 20))
    Image.new("RGB", (8, 8)).save(folder / "anim.gif")


# Each case: the job file, the line the error names, and the message after
# "line N: ": what is wrong, the key or value, and what to change. "…" stands for
# text from PyYAML or Pillow; <folder> for the job file's folder.
CASES: dict[str, tuple[str, int, str]] = {
    "malformed yaml": (
        "prompts: [\n  - 'a\n",
        2,
        "this is not valid YAML: …; check the indentation and quotes on this line "
        "and the one above",
    ),
    "alias bomb": (
        "a: &a ['x','x']\nb: &b [*a,*a]\nc: &c [*b,*b]\nprompts: *c\n",
        1,
        "anchors and aliases (& and *) are not supported in job files; write the "
        "values out",
    ),
    "not a mapping": (
        "- just\n- a list\n",
        1,
        "the top level must be a mapping of settings such as 'prompts:' and "
        "'aspect_ratios:', got a list",
    ),
    "unknown key": (
        "prompts: ['a']\nsampels: 2\n",
        2,
        "unknown key 'sampels'; did you mean 'samples'? Valid keys are: name, model, "
        "prompts, vars, aspect_ratios, image_sizes, references, samples, generation, "
        "system_instruction, safety_settings, exclude, include, concurrency, "
        "max_attempts, max_unknown_retries, budget, rpm, pricing, tools, from, mode, "
        "transport",
    ),
    "unknown prompt key": (
        "prompts: [{id: a, txt: hi}]\n",
        1,
        "unknown prompt key 'txt'; did you mean 'text'? Valid keys are: id, text",
    ),
    "wrong type samples": (
        "prompts: ['a']\nsamples: two\n",
        2,
        "samples must be a whole number from 1 to 1000, got 'two'",
    ),
    "bool concurrency": (
        "prompts: ['a']\nconcurrency: yes\n",
        2,
        "concurrency must be a whole number from 1 to 1024, got yes (a yes/no value)",
    ),
    "negative attempts": (
        "prompts: ['a']\nmax_attempts: -1\n",
        2,
        "max_attempts must be a whole number from 1 to 100, got -1",
    ),
    "unknown placeholder": (
        "prompts: ['A {colour} cat']\n",
        1,
        "prompt 'p1' uses {colour} but there is no var 'colour' (known vars: none "
        "are declared); declare it under 'vars:', fix the name, or write "
        "{{colour}} for literal braces",
    ),
    "format spec placeholder": (
        "prompts: ['A {style:>9} cat']\nvars: {style: [x]}\n",
        1,
        "prompt 'p1' uses a format spec in '{style:>9}': only plain {name} "
        "placeholders are supported; write {{ and }} for literal braces",
    ),
    "empty prompts": (
        "prompts: []\n",
        1,
        "prompts is empty; add at least one prompt",
    ),
    "empty aspect ratios": (
        "prompts: ['a']\naspect_ratios: []\n",
        2,
        "aspect_ratios is an empty list; give at least one value or remove the key",
    ),
    "empty var axis": (
        "prompts: ['{s}']\nvars: {s: []}\n",
        2,
        "var 's' has an empty list; give at least one value or remove the var",
    ),
    "bad aspect ratio": (
        "prompts: ['a']\naspect_ratios: ['5:3']\n",
        2,
        "aspect ratio '5:3' is not supported; use one of 1:1, 1:4, 1:8, 2:3, 3:2, "
        "3:4, 4:1, 4:3, 4:5, 5:4, 8:1, 9:16, 16:9, 21:9, auto",
    ),
    "bad image size": (
        "prompts: ['a']\nimage_sizes: [8K]\n",
        2,
        "image size '8K' is not supported; use one of 512, 1K, 2K, 4K",
    ),
    "missing reference": (
        "prompts: ['a']\nreferences: [[gone.png]]\n",
        2,
        "reference image 'gone.png' not found (looked for '<folder>/gone.png'); "
        "paths are relative to the job file's folder: fix the path or add the file",
    ),
    "directory reference": (
        "prompts: ['a']\nreferences: [[adir.png]]\n",
        2,
        "reference image 'adir.png' is a folder, not an image file; list the image "
        "files inside it one by one",
    ),
    "not an image": (
        "prompts: ['a']\nreferences: [[notes.png]]\n",
        2,
        "reference image 'notes.png' is not an image (PNG, JPEG or WEBP expected); "
        "convert it to PNG or JPEG",
    ),
    "truncated image": (
        "prompts: ['a']\nreferences: [[cut.png]]\n",
        2,
        "reference image 'cut.png' is damaged or truncated (…); export it again as "
        "PNG or JPEG",
    ),
    "decompression bomb": (
        "prompts: ['a']\nreferences: [[bomb.png]]\n",
        2,
        "reference image 'bomb.png' has too many pixels: over the 50 million pixel "
        "limit (a decompression bomb?); resize it",
    ),
    "too large for the api": (
        "prompts: ['a']\nreferences: [[big.png]]\n",
        2,
        "reference image 'big.png' is 8.0 MiB, over the API's 7 MiB limit for one "
        "image; make it smaller (fewer pixels, or save it as JPEG)",
    ),
    "unsupported format": (
        "prompts: ['a']\nreferences: [[anim.gif]]\n",
        2,
        "reference image 'anim.gif' is a GIF image, which the API does not take; "
        "convert it to PNG or JPEG",
    ),
    "name with dot dot": (
        "name: ../escape\nprompts: ['a']\n",
        1,
        f"name '../escape' cannot name an output folder; use {NAME_RULE}",
    ),
    "name with slash": (
        "name: a/b\nprompts: ['a']\n",
        1,
        f"name 'a/b' cannot name an output folder; use {NAME_RULE}",
    ),
    "name with control char": (
        "name: \"a\\x07b\"\nprompts: ['a']\n",
        1,
        f"name 'a\\x07b' cannot name an output folder; use {NAME_RULE}",
    ),
    "prompt id with slash": (
        "prompts: [{id: ../x, text: hi}]\n",
        1,
        f"prompt id '../x' cannot be used in file names; use {NAME_RULE}",
    ),
    "prompt id with newline": (
        'prompts: [{id: "a\\nb", text: hi}]\n',
        1,
        f"prompt id 'a\\nb' cannot be used in file names; use {NAME_RULE}",
    ),
    "exclude unknown prompt": (
        "prompts: ['a']\nexclude: [{prompt: nope}]\n",
        2,
        "exclude entry: there is no prompt with id 'nope'; use one of p1",
    ),
    "generation sets the aspect": (
        "prompts: ['a']\ngeneration: {imageConfig: {aspectRatio: '1:1'}}\n",
        2,
        "generation.imageConfig.aspectRatio is set per cell by runner; use the "
        "'aspect_ratios:' key instead",
    ),
}


def files_under(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_job_files_are_refused_before_anything_is_sent(
    sim: SimServer, tmp_path: Path, case: str
) -> None:
    body, line, message = CASES[case]
    make_files(tmp_path)
    job = write_job(tmp_path, body, name="hostile.yaml")
    before = files_under(tmp_path)
    out = tmp_path / "out"
    result = invoke(
        "submit", job, "--base-url", sim.url, "--output", out,
        env={"TOKAIFY_API_KEY": SECRET},
    )  # fmt: skip
    # Nothing written anywhere: a name with '..' resolves against the output
    # root, so `../escape` would land in tmp_path/escape, next to `out`.
    assert not (out.parent / "escape").exists()
    assert files_under(tmp_path) == before
    assert result.exit_code == 2, result.output
    expected = f"error: {job} line {line}: " + message.replace(
        "<folder>", str(tmp_path)
    )
    pattern = ".*".join(re.escape(part) for part in expected.split("…"))
    assert re.fullmatch(pattern + "\n", result.output), result.output
    assert SECRET not in result.output
    assert sim.stats()["requests"] == 0


def test_a_grid_past_the_limit_needs_yes(sim: SimServer, tmp_path: Path) -> None:
    job = write_job(
        tmp_path,
        """
        name: huge
        prompts: ["{a} {b} {c}"]
        vars:
          a: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
          b: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
          c: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
        aspect_ratios: ["1:1", "16:9"]
        """,
    )
    result = invoke(
        "submit", job, "--base-url", sim.url, "--output", tmp_path / "out",
        env={"TOKAIFY_API_KEY": SECRET},
    )  # fmt: skip
    assert result.exit_code == 2
    assert "16,000 requests" in result.output and "--yes" in result.output
    assert sim.stats()["requests"] == 0


def test_long_and_non_ascii_prompts_work(sim: SimServer, tmp_path: Path) -> None:
    long_text = "猫の宇宙飛行士 🚀 " + "détaillé, " * 3000
    job = write_job(tmp_path, f"name: unicode\nprompts:\n  - {long_text!r}\n")
    result = invoke(
        "submit", job, "--base-url", sim.url, "--output", tmp_path / "out",
        env={"TOKAIFY_API_KEY": SECRET},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (body,) = sim.stats()["bodies"].values()
    assert body["text"] == long_text
    (image,) = (tmp_path / "out" / "unicode" / "images").iterdir()
    assert image.name.startswith("p1_1x1_noref_s1_")


@pytest.mark.slow
def test_a_second_submit_of_a_running_job_refuses_and_sends_nothing(
    tmp_path: Path,
) -> None:
    from runner.simulate import SimServer

    prompts = "\n".join(f"  - 'frame {i}'" for i in range(12))
    job = write_job(tmp_path, f"name: busy\nconcurrency: 2\nprompts:\n{prompts}\n")
    out = tmp_path / "out"
    env = {"TOKAIFY_API_KEY": SECRET}
    with SimServer(latency=0.3, image_scale=0.0625) as sim:
        first = spawn("submit", job, "--base-url", sim.url, "--output", out, env=env)
        deadline = time.monotonic() + 30
        while sim.stats()["requests"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        second = invoke("submit", job, "--base-url", sim.url, "--output", out, env=env)
        assert second.exit_code == 1
        assert "being run by another process" in second.output
        code, _, err = first.finish()
        assert code == 0, err
        assert sim.stats()["requests"] == 12


def test_a_grid_of_ten_billion_is_refused_at_once_even_with_yes(
    sim: SimServer, tmp_path: Path
) -> None:
    listed = ", ".join(str(i) for i in range(100))
    axes = "".join(f"  {v}: [{listed}]\n" for v in "abcde")
    prompt = "'{a} {b} {c} {d} {e}'"
    job = write_job(tmp_path, f"name: huge\nprompts: [{prompt}]\nvars:\n{axes}")
    out = tmp_path / "out"
    for command in (("plan",), ("submit", "--yes", "--base-url", sim.url)):
        started = time.perf_counter()
        result = invoke(*command, job, "--output", out, env={"TOKAIFY_API_KEY": SECRET})
        # Generous for a slow CI machine; expanding first took minutes.
        assert time.perf_counter() - started < 5.0
        assert result.exit_code == 2, result.output
        assert result.output == (
            f"error: {job}: this job file makes 10,000,000,000 items (1 prompt x 100 "
            "values of 'a' x 100 values of 'b' x 100 values of 'c' x 100 values of "
            "'d' x 100 values of 'e'); the limit is 1,000,000 items per job: remove "
            "values from the largest axes, or split the job into several job files\n"
        )
    assert not out.exists()
    assert sim.stats()["requests"] == 0


def test_several_problems_are_one_error_line_each(
    sim: SimServer, tmp_path: Path
) -> None:
    job = write_job(
        tmp_path,
        "prompts: ['A {stlye} cat']\nvars: {style: [flat]}\nsamples: 0\n"
        "references: [[gone.png]]\n",
    )
    result = invoke(
        "submit", job, "--base-url", sim.url, "--output", tmp_path / "out",
        env={"TOKAIFY_API_KEY": SECRET},
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"error: {job} line 1: prompt 'p1' uses {{stlye}} but there is no var "
        "'stlye'; did you mean {style}? (known vars: style); declare it under "
        "'vars:', fix the name, or write {{stlye}} for literal braces",
        f"error: {job} line 3: samples must be a whole number from 1 to 1000, got 0",
        f"error: {job} line 4: reference image 'gone.png' not found (looked for "
        f"'{tmp_path}/gone.png'); paths are relative to the job file's folder: fix "
        "the path or add the file",
    ]
    assert not (tmp_path / "out").exists()
    assert sim.stats()["requests"] == 0
