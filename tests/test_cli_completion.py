"""Shell completion: JOB arguments complete to the job names in the store that the
command line (or RUNNER_OUTPUT / RUNNER_DB) names, without ever making a store."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import click
import pytest
from click.shell_completion import ShellComplete

from runner.cli import cli, complete_job
from runner.store import Store

if TYPE_CHECKING:
    from pathlib import Path

JOB_COMMANDS = sorted(
    name
    for name, command in cli.commands.items()
    if any(isinstance(p, click.Argument) and p.name == "job" for p in command.params)
)


def make_store(output: Path, *names: str) -> Path:
    store = Store.for_output(output)
    try:
        for name in names:
            store.upsert_job(name, f"jobs/{name}.yaml", "m", {})
    finally:
        store.close()
    return output / "runner.db"


def python_m_runner(**env: str) -> subprocess.CompletedProcess[str]:
    """`python -m runner` with these environment variables added, as a shell runs it."""
    return subprocess.run(
        [sys.executable, "-m", "runner"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def complete(*args: str, incomplete: str = "") -> list[tuple[str, str]]:
    """What the shell is offered after `runner ARGS... INCOMPLETE<TAB>`."""
    shell = ShellComplete(cli, {}, "runner", "_RUNNER_COMPLETE")
    return [(c.type, c.value) for c in shell.get_completions(list(args), incomplete)]


def test_every_command_taking_a_job_completes_job_names() -> None:
    assert JOB_COMMANDS == [
        "cancel",
        "export",
        "mark",
        "prune",
        "retry",
        "review",
        "rm",
        "status",
    ]
    for name in JOB_COMMANDS:
        (job,) = [p for p in cli.commands[name].params if p.name == "job"]
        assert job._custom_shell_complete is complete_job, name


@pytest.mark.parametrize("command", JOB_COMMANDS)
def test_job_names_come_from_the_output_given_on_the_line(
    tmp_path: Path, command: str
) -> None:
    out = tmp_path / "out"
    make_store(out, "acme-launch", "acme-logo", "banner")
    assert complete(command, "--output", str(out), incomplete="acme") == [
        ("plain", "acme-launch"),
        ("plain", "acme-logo"),
    ]


def test_runner_output_and_db_are_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = make_store(tmp_path / "elsewhere", "from-db")
    make_store(tmp_path / "env-out", "from-env")
    monkeypatch.setenv("RUNNER_OUTPUT", str(tmp_path / "env-out"))
    assert complete("status") == [("plain", "from-env")]
    assert complete("status", "--db", f"sqlite:///{db}") == [("plain", "from-db")]
    monkeypatch.setenv("RUNNER_DB", f"sqlite:///{db}")
    assert complete("rm") == [("plain", "from-db")]


def test_without_a_store_it_offers_files_and_creates_nothing(tmp_path: Path) -> None:
    out = tmp_path / "nothing-here"
    assert complete("status", "--output", str(out), incomplete="jobs/de") == [
        ("file", "jobs/de")
    ]
    assert not out.exists()


def test_a_name_that_matches_no_job_falls_back_to_files(tmp_path: Path) -> None:
    make_store(tmp_path / "out", "acme")
    assert complete("status", "--output", str(tmp_path / "out"), incomplete="jo") == [
        ("file", "jo")
    ]


@pytest.mark.parametrize(
    "db",
    [
        "postgresql://user@host/db",
        "sqlite:///{tmp}/garbage.db",
        "sqlite:///{tmp}/missing/runner.db",
        "sqlite:///{tmp}",
    ],
)
def test_any_store_problem_is_silent(tmp_path: Path, db: str) -> None:
    (tmp_path / "garbage.db").write_bytes(b"this is not a database" * 100)
    assert complete("status", "--db", db.format(tmp=tmp_path)) == [("file", "")]
    assert not (tmp_path / "missing").exists()


def test_the_shell_protocol_completes_job_names(tmp_path: Path) -> None:
    """What bash runs on TAB once `_RUNNER_COMPLETE=bash_source runner` is loaded."""
    out = tmp_path / "out"
    make_store(out, "acme-launch", "banner")
    result = python_m_runner(
        _RUNNER_COMPLETE="bash_complete",
        COMP_WORDS=f"runner retry --output {out} ac",
        COMP_CWORD="4",
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "plain,acme-launch\n",
        "",
    )


def test_the_bash_script_loads() -> None:
    result = python_m_runner(_RUNNER_COMPLETE="bash_source")
    assert result.returncode == 0
    assert "_runner_completion" in result.stdout
