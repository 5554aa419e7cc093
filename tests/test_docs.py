"""The documentation is part of the product: every command is documented."""

from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import signal
from pathlib import Path

import pytest

from runner.cli import cli
from tests.e2e import REPO, invoke, manifest, spawn, status_json
from tests.test_review import needs_chromium, opened
from tests.test_serve import ready

COMMANDS = sorted(cli.commands)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_ending_with_an_example(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert re.search(r"Example: runner " + command, result.output), result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_appears_in_the_readme(command: str) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"runner {command}" in readme


def test_the_readme_starts_with_the_two_commands_ci_runs() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, flags=re.S)
    demo, tests = blocks[0].strip(), blocks[1].strip()
    assert "runner submit jobs/demo.yaml --simulate" in demo
    assert tests in (REPO / ".ci" / "run").read_text(encoding="utf-8")


def test_the_readmes_retry_example_leaves_failed_items_that_retry_sends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, flags=re.S)
    (example,) = [b for b in blocks if "runner retry demo" in b]
    monkeypatch.chdir(REPO)  # where the README's commands run; output goes to tmp
    exits = []
    for line in example.strip().splitlines():
        words = shlex.split(line)
        env = dict(w.split("=", 1) for w in itertools.takewhile(_is_setting, words))
        command = words[len(env) :]
        assert command[0] == "runner", line
        exits.append(invoke(*command[1:], env=env).exit_code)
        if command[1] == "status":
            counts = status_json("demo", Path(os.environ["RUNNER_OUTPUT"]))["counts"]
            assert counts["failed"] == 6 and counts["simulated"] == 6, counts
    assert exits == [1, 0, 0]  # some items failed; status; the retry sent them all
    counts = status_json("demo", Path(os.environ["RUNNER_OUTPUT"]))["counts"]
    assert counts["simulated"] == 12 and counts["failed"] == 0


def _is_setting(word: str) -> bool:
    return re.fullmatch(r"[A-Z_]+=.*", word, flags=re.S) is not None


@needs_chromium
@pytest.mark.timeout(120)
def test_the_readmes_whole_loop_runs_as_written(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every line of the worked example, as written, in a copy of the repo's job
    files; the served gallery's lines in a child process, starring with the
    keyboard in headless Chromium as the comment says."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    fenced = re.findall(r"^```(\w*)\n(.*?)^```$", readme, flags=re.S | re.M)
    (example,) = [b for kind, b in fenced if "runner export demo picked" in b]
    shutil.copytree(REPO / "jobs", tmp_path / "jobs")
    monkeypatch.chdir(tmp_path)
    out = Path(os.environ["RUNNER_OUTPUT"])
    served = 0
    for line in example.strip().splitlines():
        command = shlex.split(line, comments=True)
        assert command[0] == "runner", line
        if "--serve" not in command:
            result = invoke(*command[1:])
            assert result.exit_code == 0, (line, result.output)
            continue
        served += 1
        # BROWSER: what --open starts, a command that opens nothing
        proc = spawn(*command[1:], env={"BROWSER": "true"})
        try:
            assert proc.popen.stdout is not None
            url = proc.popen.stdout.readline().split(" at ")[1].strip()
            with opened(url) as page:
                ready(page)
                if served == 1:
                    for key in "jsjsjs":
                        page.keyboard.press(key)
                    ready(page)
                else:
                    children = page.locator("#list .cell .lin.down")
                    assert children.count() == 3 * 3  # three stars, three jobs
        finally:
            proc.popen.send_signal(signal.SIGINT)
        code, _, stderr = proc.finish(timeout=30)
        assert code == 0, stderr
    assert served == 2
    stars = [i for r in manifest(out, "demo") for i, m in r["marks"].items()]
    assert len(stars) == 3
    assert sorted(p.name for p in (tmp_path / "picked").iterdir()) == sorted(
        [Path(i).name for i in stars] + [Path(i).name + ".json" for i in stars]
    )
    derived = {"demo-night": 6, "demo-closer": 3, "demo-4k": 3}
    for job, items in derived.items():
        rows = manifest(out, job)
        assert len(rows) == items and {r["status"] for r in rows} == {"succeeded"}
        assert {r["parent"]["image"] for r in rows} == set(stars)
    assert {r["image_size"] for r in manifest(out, "demo-4k")} == {"4K"}
