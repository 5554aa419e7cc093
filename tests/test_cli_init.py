"""`runner init`: a starter job folder that plans as written, and never overwrites."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import jsonschema
import yaml

from runner.spec import TOP_LEVEL_KEYS
from runner.spec.schema import EDITOR_LINE, schema_text
from tests.e2e import invoke, status_json

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def test_init_writes_a_job_its_schema_and_a_refs_folder(tmp_path: Path) -> None:
    folder = tmp_path / "acme-launch"
    result = invoke("init", folder)
    assert result.exit_code == 0, result.output
    job = folder / "job.yaml"
    assert result.output == (
        f"wrote {job}\n"
        f"      {folder / 'job.schema.json'} (its JSON Schema, for editors)\n"
        f"      {folder / 'refs'}/ (reference images go here)\n"
        "next:\n"
        f"  runner plan {job}\n"
        f"  runner submit {job} --simulate\n"
    )
    text = job.read_text(encoding="utf-8")
    # editors read the schema beside the job file, the one `runner schema` prints
    assert text.splitlines()[0] == EDITOR_LINE.format(path="job.schema.json")
    assert (folder / "job.schema.json").read_text(encoding="utf-8") == schema_text()
    assert "references:" in (folder / "refs" / "README.txt").read_text("utf-8")
    assert "name: acme-launch\n" in text
    assert "runner submit job.yaml --simulate" in text


def test_the_starter_plans_and_runs_as_written(tmp_path: Path) -> None:
    assert invoke("init", tmp_path / "start").exit_code == 0
    job = tmp_path / "start" / "job.yaml"
    out = tmp_path / "out"
    planned = invoke("plan", job, "--json", "--output", out)
    assert planned.exit_code == 0, planned.output
    assert json.loads(planned.stdout)["items"] == 8
    ran = invoke("submit", job, "--simulate", "--output", out, "--no-review")
    assert ran.exit_code == 0, ran.output
    assert status_json("start", out)["counts"]["simulated"] == 8


def test_the_starter_satisfies_its_schema_and_mentions_every_key(
    tmp_path: Path,
) -> None:
    assert invoke("init", tmp_path).exit_code == 0
    text = (tmp_path / "job.yaml").read_text(encoding="utf-8")
    schema = json.loads((tmp_path / "job.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(yaml.safe_load(text), schema)
    lines = text.splitlines()
    for key in TOP_LEVEL_KEYS:
        assert f"{key}:" in [line.removeprefix("# ").split(" ")[0] for line in lines]


def test_init_defaults_to_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my shop").mkdir()
    monkeypatch.chdir(tmp_path / "my shop")
    result = invoke("init")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "wrote job.yaml"
    # "my shop" cannot name an output folder
    assert "\nname: my-job\n" in (tmp_path / "my shop" / "job.yaml").read_text("utf-8")


def test_init_never_overwrites_a_job_file(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text("prompts: [mine]\n", encoding="utf-8")
    result = invoke("init", tmp_path)
    assert result.exit_code == 2
    assert result.output == (
        f"error: {tmp_path / 'job.yaml'} already exists; runner init never "
        "overwrites a file: give another folder (runner init DIR), or remove it\n"
    )
    assert (tmp_path / "job.yaml").read_text(encoding="utf-8") == "prompts: [mine]\n"
    assert not (tmp_path / "refs").exists()
    assert not (tmp_path / "job.schema.json").exists()


def test_init_refreshes_runners_schema_but_keeps_another(tmp_path: Path) -> None:
    stale = {"$id": "urn:runner:job-file", "title": "an older runner's schema"}
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "job.schema.json").write_text(json.dumps(stale), "utf-8")
    assert invoke("init", tmp_path / "a").exit_code == 0
    assert (tmp_path / "a" / "job.schema.json").read_text("utf-8") == schema_text()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "job.schema.json").write_text('{"title": "mine"}', "utf-8")
    result = invoke("init", tmp_path / "b")
    assert result.exit_code == 2
    assert "job.schema.json exists and is not runner's job schema" in result.output
    assert not (tmp_path / "b" / "job.yaml").exists()


def test_init_into_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    result = invoke("init", tmp_path / "notes.txt")
    assert result.exit_code == 2
    assert "notes.txt is a file, not a folder" in result.output


def test_schema_prints_json(tmp_path: Path) -> None:
    result = invoke("schema")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["title"] == "runner job file"
