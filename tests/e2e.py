"""Helpers shared by the end-to-end tests: job files and a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from click.testing import CliRunner, Result

from runner import outputs, runs
from runner.cli import cli
from runner.client import Endpoint
from runner.runs import execution
from runner.spec import load_job

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from runner.reports import RunReport
    from runner.scheduler import ProgressCallback
    from runner.store import JobRow, Store

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
SECRET = "sk-test-SECRET-0123456789abcdef"


def write_job(folder: Path, body: str, name: str = "job.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


async def submit_prompts(
    tmp_path: Path,
    base_url: str,
    prompts: Sequence[str],
    settings: str,
    overrides: Mapping[str, Any],
    read: Callable[[Store, JobRow], T],
    on_progress: ProgressCallback | None = None,
) -> tuple[RunReport, T]:
    """Submit job `t` (these prompts, then the `settings` lines; the same job file
    each time) to `base_url` through the runs layer, with the key SECRET and these
    RunSettings `overrides`; the report, and what `read` takes from the store."""
    listed = "\n".join(f"  - {p!r}" for p in prompts)
    job = write_job(tmp_path, f"name: t\nprompts:\n{listed}\n{settings}")
    workspace = runs.Workspace(tmp_path / "out")
    store = workspace.open_store()
    try:
        report = await execution.submit_spec(
            load_job(job),
            workspace=workspace,
            store=store,
            endpoint=Endpoint(base_url=base_url, api_key=SECRET),
            overrides=overrides,
            on_progress=on_progress,
        )
        row = store.get_job("t")
        assert row is not None
        return report, read(store, row)
    finally:
        store.close()


EARLIER_ITEM_IMAGE_NAME = outputs.item_image_name


def earlier_image_name(item: outputs.ItemNames, index: int, ext: str) -> str:
    """How runner named image files before var values were in names: patch it in
    for `outputs.item_image_name` to write files as an earlier runner did."""
    return EARLIER_ITEM_IMAGE_NAME(item, index, ext, with_vars=False)


def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    """Run the CLI in process, as a user would type it."""
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def status_json(job: str, output: Path) -> dict[str, Any]:
    result = invoke("status", job, "--json", "--output", output)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def tab_tables(output: str) -> list[list[list[str]]]:
    """The tables in a command's output through a pipe: each a header line and
    tab-separated rows, set off from other lines by a blank line."""
    tables: list[list[list[str]]] = []
    for block in output.split("\n\n"):
        lines = block.strip("\n").splitlines()
        if lines and "\t" in lines[0]:
            tables.append([line.split("\t") for line in lines])
    return tables


def manifest(output: Path, job: str) -> list[dict[str, Any]]:
    path = output / job / "manifest.jsonl"
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


@dataclass
class Proc:
    popen: subprocess.Popen[str]

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        out, err = self.popen.communicate(timeout=timeout)
        return self.popen.returncode, out, err


def spawn(*args: str | Path, env: dict[str, str] | None = None) -> Proc:
    """Run `python -m runner ...` in a child process (for kill and signal tests)."""
    full_env = {**os.environ, **(env or {})}
    popen = subprocess.Popen(
        [sys.executable, "-m", "runner", *(str(a) for a in args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
        cwd=REPO,
    )
    return Proc(popen)
