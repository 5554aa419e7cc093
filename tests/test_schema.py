"""The job-file JSON Schema: generated from the reader's own definitions, kept in the
repo, and in agreement with the reader wherever a schema can say what it checks."""

from __future__ import annotations

import json
import textwrap
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest
import yaml

from runner.errors import JobSpecError
from runner.models import ASPECT_RATIOS, MODELS
from runner.spec import TOP_LEVEL_KEYS, load_job
from runner.spec.keys import KEYS
from runner.spec.schema import EDITOR_LINE, SCHEMA_ID, job_schema, schema_text
from tests.e2e import REPO, invoke
from tests.test_spec import make_image

if TYPE_CHECKING:
    from pathlib import Path

REPO_SCHEMA = REPO / "schema" / "job.schema.json"
VALIDATOR = jsonschema.Draft202012Validator(job_schema())


def schema_errors(text: str) -> list[str]:
    """What the schema says of a job file's text, as an editor would read it:
    each error, and under an anyOf what each of its branches says."""
    document = yaml.safe_load(textwrap.dedent(text))
    return [
        message
        for error in VALIDATOR.iter_errors(document)
        for message in _messages(error)
    ]


def _messages(error: jsonschema.ValidationError) -> list[str]:
    return [error.message] + [m for c in error.context or () for m in _messages(c)]


def reader_accepts(tmp_path: Path, text: str) -> bool:
    path = tmp_path / "job.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    try:
        load_job(path)
    except JobSpecError:
        return False
    return True


# -- one definition, one copy in the repo ------------------------------------------


def test_the_repo_copy_is_what_runner_schema_prints() -> None:
    result = invoke("schema")
    assert result.exit_code == 0
    assert result.stdout == schema_text()
    assert REPO_SCHEMA.read_text(encoding="utf-8") == result.stdout, (
        "schema/job.schema.json is out of date; refresh it with:\n"
        "  runner schema > schema/job.schema.json"
    )


def test_it_is_a_valid_draft_2020_12_schema_with_an_id() -> None:
    schema = json.loads(REPO_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID


def test_its_keys_descriptions_and_values_come_from_the_reader() -> None:
    schema = job_schema()
    properties = schema["properties"]
    assert tuple(properties) == TOP_LEVEL_KEYS
    for key in KEYS:
        assert properties[key.name]["description"] == key.description
    assert schema["$defs"]["aspect_ratio"]["enum"] == [*ASPECT_RATIOS, "auto", "parent"]
    assert properties["model"]["anyOf"][0]["enum"] == list(MODELS)
    # what only `runner plan` can check is said where an editor shows it
    assert "placeholder" in schema["description"]
    assert "runner plan" in schema["description"]


# -- the job files in the repo ---------------------------------------------------


@pytest.mark.parametrize("job", sorted((REPO / "jobs").glob("*.yaml")), ids=str)
def test_every_demo_job_is_valid_and_names_the_repo_schema(job: Path) -> None:
    text = job.read_text(encoding="utf-8")
    assert schema_errors(text) == []
    first = text.splitlines()[0]
    assert first == EDITOR_LINE.format(path="../schema/job.schema.json")
    assert (job.parent / "../schema/job.schema.json").resolve() == REPO_SCHEMA


# -- what the schema refuses, the reader refuses too ---------------------------------


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ('aspect_ratio: ["1:1"]', "'aspect_ratio' was unexpected"),
        ("sample: 2", "'sample' was unexpected"),
        ("samples: two", "'two' is not of type 'integer', 'null'"),
        ("samples: 0", "0 is less than the minimum of 1"),
        ("concurrency: [4]", "is not of type 'integer', 'null'"),
        ('aspect_ratios: ["5:3"]', "'5:3' is not one of"),
        ("image_sizes: [3K]", "'3K' is not one of"),
        ("budget: {max_request: 5}", "'max_request' was unexpected"),
        ("pricing: {input: 1}", "'input' was unexpected"),
        ("vars: {style: []}", "should be non-empty"),
        ("vars: {prompt: [a]}", "should not be valid"),
        ("name: ../escape", "does not match"),
        ("system_instruction: '  '", "does not match"),
        ("rpm: 0", "less than or equal to the minimum of 0"),
        ("tools: [{}]", "should be non-empty"),
        ("exclude: [{}]", "should be non-empty"),
        ("generation: {candidateCount: 2}", "1 was expected"),
        ("generation: {aspectRatio: '1:1'}", "should not be valid"),
        ("generation: {imageConfig: {image_size: 2K}}", "should not be valid"),
        ("prompts: {files: p.txt}", "'files' was unexpected"),
    ],
)
def test_the_schema_refuses_what_the_reader_refuses(
    tmp_path: Path, body: str, complaint: str
) -> None:
    text = body if body.startswith("prompts") else f"prompts: [A cat]\n{body}\n"
    errors = schema_errors(text)
    assert any(complaint in e for e in errors), errors
    assert not reader_accepts(tmp_path, text)


@pytest.mark.parametrize("key", [k for k in TOP_LEVEL_KEYS if k != "prompts"])
def test_a_key_with_nothing_after_it_is_fine_for_both(tmp_path: Path, key: str) -> None:
    text = f"prompts: [A cat]\n{key}:\n"
    assert schema_errors(text) == []
    assert reader_accepts(tmp_path, text)


def test_every_key_with_its_example_value_is_a_valid_job_for_both(
    tmp_path: Path,
) -> None:
    """The examples the schema and the starter file show, all at once."""
    make_image(tmp_path / "refs" / "logo.png")
    (tmp_path / "prompts.txt").write_text("A {style} cat\n", encoding="utf-8")
    text = "\n".join(f"{key.name}: {key.example}" for key in KEYS) + "\n"
    assert schema_errors(text) == []
    assert reader_accepts(tmp_path, text)
    prompts = next(key for key in KEYS if key.name == "prompts")
    listed = text.replace(f"prompts: {prompts.example}", "prompts: {file: prompts.txt}")
    assert schema_errors(listed) == []
    assert reader_accepts(tmp_path, listed)


def test_a_rerender_takes_its_prompts_from_its_parents_in_the_schema_too() -> None:
    """`mode: rerender` names no prompts (SPEC 6: it sends each parent's own);
    the reader refuses them with it, and asks for them without it."""
    rerender = "from: banners\nmode: rerender\nimage_sizes: [4K]\n"
    assert schema_errors(rerender) == []
    for key, value in (("prompts", "[A cat]"), ("vars", "{a: [1]}")):
        assert schema_errors(f"{rerender}{key}: {value}\n") != []
    assert any(
        "'prompts' is a required property" in e
        for e in schema_errors("from: banners\nmode: edit\n")
    )


def test_values_the_reader_takes_as_written_pass_the_schema(tmp_path: Path) -> None:
    text = """\
        prompts: "A single {n} prompt"
        vars: {n: [1, 2.5, yes, two]}
        image_sizes: [512, 1K]
        references: refs/logo.png
        exclude: [{n: 1}]
        include: [{references: 0, sample: 1}]
        budget: {max_requests: null}
        """
    make_image(tmp_path / "refs" / "logo.png")
    assert schema_errors(text) == []
    assert reader_accepts(tmp_path, text)


def _first_error(text: str) -> dict[str, Any]:
    error = next(VALIDATOR.iter_errors(yaml.safe_load(text)))
    return {"path": list(error.absolute_path), "message": error.message}


def test_an_error_points_at_the_key_an_editor_underlines() -> None:
    assert _first_error("prompts: [A cat]\nbudget: {max_images: -1}\n") == {
        "path": ["budget", "max_images"],
        "message": "-1 is less than the minimum of 0",
    }
