"""The documentation is part of the product: every command is documented."""

from __future__ import annotations

import re

import pytest

from runner.cli import cli
from tests.e2e import REPO, invoke

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
