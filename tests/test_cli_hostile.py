"""Hostile and mistaken input through the real CLI: each case is refused before any
request is sent, with a message that says what to fix and no traceback; nothing is
written outside output/<job>/; the API key shows up nowhere."""

from __future__ import annotations

import io
import time
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from tests.e2e import SECRET, invoke, spawn, write_job

if TYPE_CHECKING:
    from pathlib import Path

    from runner.simulate import SimServer


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


CASES = {
    "malformed yaml": ("prompts: [\n  - 'a\n", "line"),
    "alias bomb": (
        "a: &a ['x','x']\nb: &b [*a,*a]\nc: &c [*b,*b]\nprompts: *c\n",
        "alias",
    ),
    "not a mapping": ("- just\n- a list\n", "mapping"),
    "unknown key": ("prompts: ['a']\nsampels: 2\n", "samples"),
    "unknown prompt key": ("prompts: [{id: a, txt: hi}]\n", "txt"),
    "wrong type samples": ("prompts: ['a']\nsamples: two\n", "samples"),
    "bool concurrency": ("prompts: ['a']\nconcurrency: yes\n", "concurrency"),
    "negative attempts": ("prompts: ['a']\nmax_attempts: -1\n", "max_attempts"),
    "unknown placeholder": ("prompts: ['A {colour} cat']\n", "colour"),
    "format spec placeholder": (
        "prompts: ['A {style:>9} cat']\nvars: {style: [x]}\n",
        "style",
    ),
    "empty prompts": ("prompts: []\n", "prompts"),
    "empty aspect ratios": ("prompts: ['a']\naspect_ratios: []\n", "aspect_ratios"),
    "empty var axis": ("prompts: ['{s}']\nvars: {s: []}\n", "empty list"),
    "bad aspect ratio": ("prompts: ['a']\naspect_ratios: ['5:3']\n", "16:9"),
    "bad image size": ("prompts: ['a']\nimage_sizes: [8K]\n", "4K"),
    "missing reference": ("prompts: ['a']\nreferences: [[gone.png]]\n", "gone.png"),
    "directory reference": ("prompts: ['a']\nreferences: [[adir.png]]\n", "adir.png"),
    "not an image": ("prompts: ['a']\nreferences: [[notes.png]]\n", "notes.png"),
    "truncated image": ("prompts: ['a']\nreferences: [[cut.png]]\n", "cut.png"),
    "decompression bomb": ("prompts: ['a']\nreferences: [[bomb.png]]\n", "bomb.png"),
    "too large for the api": ("prompts: ['a']\nreferences: [[big.png]]\n", "MiB"),
    "unsupported format": ("prompts: ['a']\nreferences: [[anim.gif]]\n", "PNG"),
    "name with dot dot": ("name: ../escape\nprompts: ['a']\n", "name"),
    "name with slash": ("name: a/b\nprompts: ['a']\n", "name"),
    "name with control char": ("name: \"a\\x07b\"\nprompts: ['a']\n", "name"),
    "prompt id with slash": ("prompts: [{id: ../x, text: hi}]\n", "id"),
    "prompt id with newline": ('prompts: [{id: "a\\nb", text: hi}]\n', "id"),
    "exclude unknown prompt": (
        "prompts: ['a']\nexclude: [{prompt: nope}]\n",
        "nope",
    ),
    "generation sets the aspect": (
        "prompts: ['a']\ngeneration: {imageConfig: {aspectRatio: '1:1'}}\n",
        "aspect_ratios",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_job_files_are_refused_before_anything_is_sent(
    sim: SimServer, tmp_path: Path, case: str
) -> None:
    body, hint = CASES[case]
    make_files(tmp_path)
    job = write_job(tmp_path, body, name="hostile.yaml")
    out = tmp_path / "out"
    result = invoke(
        "submit", job, "--base-url", sim.url, "--output", out,
        env={"TOKAIFY_API_KEY": SECRET},
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "hostile.yaml" in result.output and hint in result.output
    assert "Traceback" not in result.output and SECRET not in result.output
    assert sim.stats()["requests"] == 0
    assert not (tmp_path.parent / "escape").exists()
    assert not out.exists() or [p.name for p in out.iterdir()] == []


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
