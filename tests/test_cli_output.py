"""How the CLI's output reads: on an 80-column terminal no name, number or path is
cut; through a pipe, plain lines and tab-separated rows; `--json` errors as one JSON
object; environment variables in `--help`; `review --open` with no browser. Real
jobs on the simulated API and a real SQLite file.

A terminal is what rich takes for one: TTY_COMPATIBLE=1 (its documented switch),
COLUMNS its width. Without them CliRunner's stdout is a pipe."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import click
import pytest

from runner import runs
from runner.cli import cli
from tests.e2e import REPO, SECRET, invoke, tab_tables, write_job

if TYPE_CHECKING:
    from pathlib import Path

    from click.testing import Result

    from runner.simulate import SimServer

TERMINAL_80 = {"TTY_COMPATIBLE": "1", "COLUMNS": "80"}
NAME = "acme-bottle-hero-shot-v2"  # as long as a name can be in the 80-column list
LONG_NAME = "acme-bottle-launch-hero-shots-for-the-spring-campaign-2026"
REFUSED = "a bottle on a beach at noon [sim:400]"
JOB = f"""
    name: {NAME}
    prompts:
      - {{id: hero, text: "a tall glass bottle of sparkling water on marble"}}
      - {{id: beach, text: "{REFUSED}"}}
    aspect_ratios: ["1:1", "16:9", "9:16"]
    image_sizes: ["1K", "2K"]
    samples: 2
    concurrency: 8
"""


def submit(job: Path, sim: SimServer, out: Path, *extra: str) -> Result:
    return invoke(
        "submit", job, "--base-url", sim.url, "--output", out, *extra,
        env={"TOKAIFY_API_KEY": SECRET},
    )  # fmt: skip


def on_terminal(*args: str | Path) -> list[str]:
    """The lines an 80-column terminal shows, colours removed."""
    result = invoke(*args, env=TERMINAL_80)
    assert result.exit_code in (0, 1), result.output
    return click.unstyle(result.stdout).splitlines()


@pytest.fixture
def out(sim: SimServer, tmp_path: Path) -> Path:
    """A store with NAME: 12 images and 12 refused items (HTTP 400)."""
    out = tmp_path / "a-results-folder-with-a-long-name" / "nested" / "output"
    assert submit(write_job(tmp_path, JOB), sim, out).exit_code == 1
    return out


def status_by(out: Path, *axes: str) -> dict[str, Any]:
    """`runner status NAME --json --by AXIS...`."""
    by = [arg for axis in axes for arg in ("--by", axis)]
    result = invoke("status", NAME, "--json", *by, "--output", out)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def whole(word: str, line: str) -> bool:
    """`word` is in `line` with nothing cut from either end."""
    return re.search(rf"(?<![\w,.-]){re.escape(word)}(?![\w,.-])", line) is not None


# -- an 80-column terminal ------------------------------------------------------------


def test_list_at_80_columns_shows_names_and_counts_whole(
    out: Path, tmp_path: Path
) -> None:
    job = write_job(tmp_path, "prompts: [a cat]\n", name="demo.yaml")
    assert invoke("submit", job, "--simulate", "--output", out).exit_code == 0
    lines = on_terminal("list", "--output", out)
    assert re.match(
        r"job +items +succeeded +failed +blocked +pending +updated", lines[0]
    )
    # a row's first line: name, items, succeeded, failed, blocked, pending, date;
    # "succeeded" and "updated" wrap at spaces to make room
    rows = {line.split()[0]: line.split() for line in lines[2:] if line[:1].strip()}
    assert rows[NAME][:6] == [NAME, "24", "12", "12", "0", "0"]
    assert rows["demo"][:6] == ["demo", "1", "0", "(+1", "0", "0"]
    assert (
        "sim.)"
        in lines[lines.index(next(x for x in lines if x.startswith("demo"))) + 1]
    )
    assert all(len(line) <= 80 for line in lines)
    assert "…" not in "\n".join(lines)


def test_a_name_too_long_for_the_list_turns_it_into_records(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job = write_job(tmp_path, f"name: {LONG_NAME}\nprompts: [a cat, a dog]\n")
    assert submit(job, sim, out).exit_code == 0
    lines = on_terminal("list", "--output", out)
    records = dict(line.split(maxsplit=1) for line in lines if line.strip())
    assert records["job"].strip() == LONG_NAME
    assert records["items"].strip() == records["succeeded"].strip() == "2"
    assert all(len(line) <= 80 for line in lines)


def test_status_at_80_columns_keeps_token_counts_and_reasons_whole(out: Path) -> None:
    data = status_by(out, "prompt", "aspect_ratio")
    lines = on_terminal("status", NAME, "--by", "prompt", "--by", "aspect_ratio",
                        "--output", out)  # fmt: skip
    shown = "\n".join(lines)
    assert "…" not in shown and all(len(line) <= 80 for line in lines)
    assert any(whole(f"{data['usage']['totalTokenCount']:,}", line) for line in lines)
    by = data["by"]
    assert len(f"{by['prompt']['hero']['usage']['totalTokenCount']:,}") >= 6
    for axis, groups in by.items():
        for value, group in groups.items():
            (row,) = [line.split() for line in lines if line.startswith(f"{value} ")]
            assert row[:2] == [value, str(group["items"])], axis
            assert row[7] == f"{group['usage']['totalTokenCount']:,}", axis
            assert row[8] == f"{group['cost']['total_usd']:.4f}", axis
    # the failures table wraps its reason at spaces: every word of it is there
    (failure,) = data["failures"]
    assert failure["count"] == 12
    (title,) = [
        n for n, line in enumerate(lines) if line.strip() == "failures by reason"
    ]
    words = " ".join(line.strip() for line in lines[title:])
    assert " ".join(failure["reason"].split()) in " ".join(words.split())


def test_a_run_and_a_plan_print_their_paths_whole_at_80_columns(
    sim: SimServer, out: Path, tmp_path: Path
) -> None:
    job = tmp_path / "job.yaml"
    manifest = out / NAME / "manifest.jsonl"
    assert len(str(manifest)) > 80  # longer than the terminal is wide
    result = invoke("submit", job, "--base-url", sim.url, "--output", out,
                    env={**TERMINAL_80, "TOKAIFY_API_KEY": SECRET})  # fmt: skip
    assert result.exit_code == 1
    lines = click.unstyle(result.stdout).splitlines()
    assert lines[0].startswith(f"{NAME}: nothing sent")
    assert lines[0].endswith(f"; manifest {manifest}")
    plan = on_terminal("plan", job, "--output", out)
    assert plan[0].startswith(f"{NAME} ({job}): 24 items")


# -- through a pipe -------------------------------------------------------------------


def test_status_through_a_pipe_is_plain_lines_and_tab_separated_tables(
    out: Path,
) -> None:
    data = status_by(out, "image_size")
    result = invoke("status", NAME, "--by", "image_size", "--output", out)
    assert result.exit_code == 0
    assert "\x1b" not in result.stdout and not set("─━│┃…") & set(result.stdout)
    counts, sizes, failures = tab_tables(result.stdout)
    assert counts == [
        ["job", "items", "succeeded", "simulated", "failed", "blocked", "pending",
         "running"],
        [NAME, "24", "12", "0", "12", "0", "0", "0"],
    ]  # fmt: skip
    assert sizes[0] == [
        "image_size", "items", "ok", "failed", "blocked", "pending", "requests",
        "tokens", "USD",
    ]  # fmt: skip
    assert {row[0]: (int(row[1]), int(row[7]), row[8]) for row in sizes[1:]} == {
        size: (
            g["items"], g["usage"]["totalTokenCount"], f"{g['cost']['total_usd']:.4f}"
        )
        for size, g in data["by"]["image_size"].items()
    }  # fmt: skip
    assert failures == [
        ["status", "count", "reason"],
        ["failed", "12", data["failures"][0]["reason"]],
    ]
    # summary lines are never wrapped
    (spend,) = [line for line in result.stdout.splitlines() if line.startswith("spend")]
    assert len(spend) > 80 and spend.endswith(f"as of {data['price']['as_of']})")


def test_list_and_submit_through_a_pipe(
    sim: SimServer, out: Path, tmp_path: Path
) -> None:
    ((header, *rows),) = tab_tables(invoke("list", "--output", out).stdout)
    assert dict(zip(header, rows[0], strict=True)) == {
        "job": NAME, "items": "24", "succeeded": "12", "simulated": "0",
        "failed": "12", "blocked": "0", "pending": "0", "updated": rows[0][-1],
    }  # fmt: skip
    again = submit(tmp_path / "job.yaml", sim, out)
    first, *_ = again.stdout.splitlines()
    assert first.endswith(f"manifest {out / NAME / 'manifest.jsonl'}")
    assert tab_tables(again.stdout)[0][1][:2] == [NAME, "24"]


# -- --json errors --------------------------------------------------------------------


def error_of(result: Result) -> dict[str, Any]:
    """The one JSON object on stdout, its `error`; the same text on stderr."""
    error: dict[str, Any] = json.loads(result.stdout)["error"]
    assert error["exit_code"] == result.exit_code
    assert error["message"].splitlines()[0] in result.stderr
    return error


def test_an_unknown_job_with_json_is_a_json_error(tmp_path: Path) -> None:
    result = invoke("status", "nope", "--json", "--output", tmp_path / "out")
    assert error_of(result) == {
        "message": result.stderr.removeprefix("error: ").rstrip("\n"),
        "exit_code": 2,
        "type": "UsageError",
    }
    without = invoke("status", "nope", "--output", tmp_path / "out")
    assert without.exit_code == 2 and without.stdout == ""


def test_a_job_file_with_problems_gives_each_with_its_line(tmp_path: Path) -> None:
    job = write_job(tmp_path, 'prompts: [a]\naspect_ratios: ["5:3"]\ncolour: red\n')
    error = error_of(invoke("plan", job, "--json", "--output", tmp_path / "out"))
    assert error["type"] == "JobSpecErrors" and error["exit_code"] == 2
    assert (error["path"], error["line"]) == (str(job), 2)
    assert [(p["path"], p["line"]) for p in error["problems"]] == [
        (str(job), 2),
        (str(job), 3),
    ]
    assert error["problems"][1]["problem"].startswith("unknown key 'colour'")


def test_a_stopped_run_with_json_is_one_object_with_its_error(
    sim: SimServer, tmp_path: Path
) -> None:
    job = write_job(tmp_path, 'prompts: ["a [sim:401]", b]\nconcurrency: 1\n')
    result = submit(job, sim, tmp_path / "out", "--json")
    assert result.exit_code == 3
    report = json.loads(result.stdout)
    assert report["counts"]["pending"] == 2 and report["stopped"]
    assert report["error"] == {
        "message": report["stopped"],
        "exit_code": 3,
        "type": "RunStopped",
        "reason": report["stopped"],
        "status": 401,
    }
    assert f"error: {report['stopped']}" in result.stderr


def test_a_bad_option_value_with_json_is_a_json_error_too(tmp_path: Path) -> None:
    for args in (("--by", "colour", "--json"), ("--json", "--by", "colour")):
        result = invoke("status", "x", *args)
        error = error_of(result)
        assert error["exit_code"] == 2 and error["type"] == "BadParameter"
        assert "'colour' is not one of" in error["message"]
        assert "Usage:" in result.stderr


def test_ctrl_c_outside_a_run_with_json_is_a_json_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def interrupted(**_: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "list_jobs", interrupted)
    error = error_of(invoke("list", "--json"))
    assert error["type"] == "Interrupted" and error["exit_code"] == 130


# -- environment variables in --help ---------------------------------------------------


def test_commands_that_send_name_both_key_variables_and_which_is_read() -> None:
    for command in ("submit", "retry"):
        text = " ".join(invoke(command, "--help").output.split())
        assert (
            "Its key: GEMINI_API_KEY for generativelanguage.googleapis.com, "
            "TOKAIFY_API_KEY for any other host (only that one variable is read)"
        ) in text, command


def test_the_group_help_names_every_variable_runner_reads() -> None:
    read = set()
    for path in (REPO / "runner").rglob("*.py"):
        # a variable's name where it is read, or named as one (`*_VARIABLE = ...`)
        read |= set(
            re.findall(
                r"(?:_VARIABLE = |envvar=|environ\.get\(|environ\[|getenv\()"
                r'"((?:RUNNER|GEMINI|TOKAIFY)_[A-Z_]+)"',
                path.read_text(),
            )
        )
    assert {
        "RUNNER_OUTPUT", "RUNNER_DB", "RUNNER_BASE_URL", "RUNNER_DEBUG",
        "RUNNER_CONFIRM_USD", "GEMINI_API_KEY", "TOKAIFY_API_KEY",
    } <= read  # fmt: skip
    read |= {p.envvar for c in cli.commands.values() for p in c.params if p.envvar}
    listed = invoke("--help").output.split("Environment:")[1]
    assert {v for v in read if not re.search(rf"^ +{v} ", listed, re.M)} == set()


# -- review --open without a browser ---------------------------------------------------


def test_review_open_says_where_the_page_is_when_no_browser_opens(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    job = write_job(tmp_path, "name: seen\nprompts: [a cat]\n")
    assert invoke("submit", job, "--simulate", "--output", out).exit_code == 0
    # a machine with no display and no browser: BROWSER names a command that fails
    env = {"PATH": os.defpath, "BROWSER": "false", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "runner", "review", "seen", "--open", "--output", out],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip
    page = (out / "seen" / "index.html").resolve()
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"gallery: {out / 'seen' / 'index.html'}\n")
    assert done.stderr == (
        f"warning: no browser could be opened; open {page.as_uri()} in one "
        f"(the gallery is {page})\n"
    )


def test_the_browser_is_asked_for_the_page_as_a_file_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    opened: list[str] = []

    def browser(url: str) -> bool:
        opened.append(url)
        return True

    monkeypatch.setattr("webbrowser.open", browser)
    out = tmp_path / "out"
    job = write_job(tmp_path, "name: seen\nprompts: [a cat]\n")
    assert invoke("submit", job, "--simulate", "--output", out).exit_code == 0
    result = invoke("review", "seen", "--open", "--output", out)
    assert result.exit_code == 0 and result.stderr == ""
    assert opened == [(out / "seen" / "index.html").resolve().as_uri()]
