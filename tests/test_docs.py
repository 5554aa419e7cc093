"""The documentation is part of the product: every command is documented."""

from __future__ import annotations

import itertools
import os
import re
import shlex
from pathlib import Path

import pytest

from runner.cli import cli
from tests.e2e import REPO, invoke, status_json

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
