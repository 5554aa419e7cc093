"""The job file as a JSON Schema (draft 2020-12), for editors and other tools.

Owns: `job_schema`, generated from the definitions the reader checks against: the
keys, descriptions and examples of `keys.KEYS`, the keys of each mapping
(prompts, budget, pricing, exclude/include entries, list files), the aspect ratios,
image sizes and models of `runner.models`, the name and model-id patterns, the
ranges of numbers, and the generationConfig field names. A mapping whose keys the
schema lists without the reader knowing them (or the reverse) fails to generate.
Must not read files: the rules only the reader can check are named in the root
description.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import yaml

from runner.models import MODELS
from runner.pricing import PRICE_KEYS
from runner.spec.derived import (
    DEFAULT_MARKED,
    DEFAULT_MODE,
    MODES,
    PARENT_RATIO,
    RERENDER_REFUSES,
    SELECTIONS,
)
from runner.spec.generation import (
    AXIS_FIELDS,
    GENERATION_FIELDS,
    NESTED_FIELDS,
    REQUEST_FIELDS,
    snake_case,
)
from runner.spec.keys import KEYS, WHOLE_NUMBERS
from runner.spec.lists import COMMENT, FILE_KEY, LIST_KEYS
from runner.spec.prompts import PROMPT_KEYS
from runner.spec.settings import BUDGET_KEYS, MODEL_PATTERN
from runner.spec.types import (
    DEFAULT_MODEL,
    DEFAULT_TRANSPORT,
    MATRIX_AXIS_KEYS,
    MAX_ITEMS,
    MAX_REFERENCES_PER_SET,
    MAX_SAMPLES,
    NAME_PATTERN,
    SUPPORTED_ASPECT_RATIOS,
    SUPPORTED_IMAGE_SIZES,
    TRANSPORTS,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from runner.spec.keys import Key

Schema = dict[str, Any]

DRAFT = "https://json-schema.org/draft/2020-12/schema"
# runner has no public home to serve the schema from, so its id is a name, not an
# address; editors find the file through the path in a job file's first line.
SCHEMA_ID = "urn:runner:job-file"
# What a job file's first line says so that editors (the YAML extension of VS
# Code, any yaml-language-server client) complete and check its keys.
EDITOR_LINE = "# yaml-language-server: $schema={path}"

ONLY_THE_READER_CHECKS = (
    "This schema checks keys, types, and the values any model takes. `runner plan "
    "JOB.yaml` checks the rest before anything is sent: that each {placeholder} "
    "names a var; that reference images and list files exist and can be read (UTF-8 "
    "text; PNG, JPEG or WEBP images); what the job's own model takes (aspect ratios, "
    "image sizes, reference images per request: see runner/models.py); that "
    "exclude/include values are on the job's axes and their var names are vars; "
    "that prompt ids are unique; that generation field names are not near misses; "
    f"and that the grid makes at most {MAX_ITEMS:,} items. YAML 1.1 readers take "
    'an unquoted 16:9 as a number: quote aspect ratios ("16:9").'
)


def job_schema() -> Schema:
    """The JSON Schema of a job file."""
    values = _values()
    properties = {key.name: _described(key, values.pop(key.name)) for key in KEYS}
    if values:  # a schema for a key the reader does not have
        raise KeyError(f"schema for unknown keys: {', '.join(values)}")
    return {
        "$schema": DRAFT,
        "$id": SCHEMA_ID,
        "title": "runner job file",
        "description": (
            "A grid of image requests for runner: prompts x vars x aspect ratios x "
            "image sizes x reference sets x samples. A key written with nothing "
            "after it takes its default. " + ONLY_THE_READER_CHECKS
        ),
        "type": "object",
        "properties": properties,
        # `mode: rerender` takes its prompts from its parents (SPEC 6) and refuses
        # them; every other job file names its prompts
        "if": {"required": ["mode"], "properties": {"mode": {"const": "rerender"}}},
        "then": {"not": {"anyOf": [{"required": [key]} for key in RERENDER_REFUSES]}},
        "else": {"required": ["prompts"]},
        "additionalProperties": False,
        "$defs": _DEFS,
    }


def schema_text() -> str:
    """`job_schema` as the JSON text `runner schema` prints and the repo keeps."""
    return json.dumps(job_schema(), indent=2, ensure_ascii=False) + "\n"


def _values() -> dict[str, Schema]:
    """Each top-level key's value, nullable but for `prompts` (see `_described`)."""
    numbers = {
        key: {
            "type": "integer",
            "minimum": limits.lo,
            "maximum": limits.hi,
            "default": limits.default,
        }
        for key, limits in WHOLE_NUMBERS.items()
    }
    return {
        "name": {"type": "string", "pattern": _NAME},
        "model": {
            "anyOf": [
                {"enum": list(MODELS), "description": "A model runner knows."},
                {"type": "string", "pattern": f"^{MODEL_PATTERN}$"},
            ],
            "default": DEFAULT_MODEL,
        },
        "prompts": {
            "anyOf": [
                {"$ref": "#/$defs/text"},
                {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "anyOf": [{"$ref": "#/$defs/text"}, {"$ref": "#/$defs/prompt"}]
                    },
                },
                {"$ref": "#/$defs/list_file"},
            ]
        },
        "vars": {
            "type": "object",
            "propertyNames": {
                # A placeholder name; exclude/include keys are taken.
                "pattern": r"^[^\W\d]\w*$",
                "not": {"enum": list(MATRIX_AXIS_KEYS)},
            },
            "additionalProperties": {
                "anyOf": [
                    {"$ref": "#/$defs/value"},
                    {
                        "type": "array",
                        "minItems": 1,
                        "uniqueItems": True,
                        "items": {"$ref": "#/$defs/value"},
                    },
                    {"$ref": "#/$defs/list_file"},
                ]
            },
        },
        "aspect_ratios": {**_axis("#/$defs/aspect_ratio"), "default": ["1:1"]},
        "image_sizes": _axis("#/$defs/image_size"),
        "references": {
            "anyOf": [
                {"$ref": "#/$defs/path"},
                {"type": "array", "items": {"$ref": "#/$defs/reference_set"}},
            ]
        },
        "samples": numbers.pop("samples"),
        "generation": _generation(),
        "system_instruction": {"$ref": "#/$defs/text"},
        "safety_settings": {"type": "array", "items": {"type": "object"}},
        "exclude": {"type": "array", "items": {"$ref": "#/$defs/matrix_entry"}},
        "include": {"type": "array", "items": {"$ref": "#/$defs/matrix_entry"}},
        **numbers,
        "budget": _mapping(
            BUDGET_KEYS,
            {
                "max_requests": {"type": ["integer", "null"], "minimum": 0},
                "max_images": {"type": ["integer", "null"], "minimum": 0},
                "max_cost_usd": {"type": ["number", "null"], "minimum": 0},
            },
        ),
        "rpm": {"type": "number", "exclusiveMinimum": 0},
        "pricing": _mapping(
            PRICE_KEYS, {key: {"type": "number", "minimum": 0} for key in PRICE_KEYS}
        ),
        "tools": {"type": "array", "items": {"type": "object", "minProperties": 1}},
        "from": {
            "anyOf": [
                {"type": "string", "pattern": _NAME},
                {
                    "type": "object",
                    "required": ["job"],
                    "additionalProperties": False,
                    "properties": {  # derived.FROM_KEYS
                        "job": {"type": "string", "pattern": _NAME},
                        "marked": {
                            "anyOf": [
                                {"enum": list(SELECTIONS)},
                                {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": {"type": "string", "minLength": 1},
                                },
                            ],
                            "default": DEFAULT_MARKED,
                        },
                    },
                },
            ]
        },
        "mode": {"enum": list(MODES), "default": DEFAULT_MODE},
        "transport": {"enum": list(TRANSPORTS), "default": DEFAULT_TRANSPORT},
    }


def _described(key: Key, value: Schema) -> Schema:
    """A key's schema with its description and example; `key:` with nothing
    after it means the default, so null is allowed (but for prompts)."""
    if key.name != "prompts":
        value = _nullable(value)
    example = yaml.safe_load(f"{key.name}: {key.example}")[key.name]
    return {"description": key.description, **value, "examples": [example]}


def _nullable(schema: Schema) -> Schema:
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    if "anyOf" in schema:
        return {**schema, "anyOf": [*schema["anyOf"], {"type": "null"}]}
    return {"anyOf": [schema, {"type": "null"}]}


def _axis(item: str) -> Schema:
    """An axis: one value, or a list of distinct values."""
    return {
        "anyOf": [
            {"$ref": item},
            {
                "type": "array",
                "minItems": 1,
                "uniqueItems": True,
                "items": {"$ref": item},
            },
        ]
    }


def _mapping(keys: Sequence[str], schemas: Mapping[str, Schema]) -> Schema:
    """A mapping of exactly the keys the reader takes, in its order."""
    if set(keys) != set(schemas):
        raise KeyError(f"schema keys {sorted(schemas)} are not the reader's {keys}")
    return {
        "type": "object",
        "properties": {key: schemas[key] for key in keys},
        "additionalProperties": False,
    }


def _generation() -> Schema:
    """generationConfig fields by name (either casing); a name close to none is
    sent with a warning, so other names pass. Fields that belong elsewhere are
    refused, saying where they go."""
    properties: dict[str, Schema] = {}
    for field in GENERATION_FIELDS:
        value: Schema = {}
        if field == "candidateCount":
            value = {"const": 1, "description": "One per request: use samples."}
        if field in NESTED_FIELDS:
            value = _nested(field, NESTED_FIELDS[field])
        _both_casings(properties, field, value)
    for field, key in REQUEST_FIELDS.items():
        _both_casings(properties, field, _not_here(f"use the top-level {key}: key"))
    for field in AXIS_FIELDS:
        _both_casings(properties, field, _per_cell(field))
    for parent, inner in NESTED_FIELDS.items():
        for field in inner:
            if field not in AXIS_FIELDS:
                _both_casings(properties, field, _not_here(f"it goes in {parent}"))
    return {"type": "object", "properties": properties}


def _nested(parent: str, fields: Sequence[str]) -> Schema:
    properties: dict[str, Schema] = {}
    for field in fields:
        per_cell = parent == "imageConfig" and field in AXIS_FIELDS
        _both_casings(properties, field, _per_cell(field) if per_cell else {})
    return {"type": "object", "properties": properties}


def _both_casings(properties: dict[str, Schema], field: str, value: Schema) -> None:
    for name in (field, snake_case(field)):
        properties.setdefault(name, value)


def _per_cell(field: str) -> Schema:
    return _not_here(f"set per cell by runner: use the {AXIS_FIELDS[field]}: key")


def _not_here(where: str) -> Schema:
    return {"not": {}, "description": f"Not here: {where}."}


# A job name or prompt id (types.valid_name): the pattern, and no '..'.
_NAME = rf"^(?!.*\.\.){NAME_PATTERN}$"
_LIST_FILE = _mapping(
    LIST_KEYS,
    {
        FILE_KEY: {
            "type": "string",
            "minLength": 1,
            "description": "A UTF-8 text file, relative to the job file: one entry "
            f"per line; blank lines and lines starting with {COMMENT} are skipped.",
        }
    },
)

_DEFS: Schema = {
    "text": {"type": "string", "pattern": r"\S"},
    "value": {
        "type": ["string", "number", "boolean"],
        "description": "A var value, used as written.",
    },
    "path": {
        "type": "string",
        "minLength": 1,
        "description": "Relative to the job file.",
    },
    "prompt": _mapping(
        PROMPT_KEYS,
        {
            "id": {
                "type": "string",
                "pattern": _NAME,
                "description": "Names the prompt in exclude/include, file names and "
                "status; default p1, p2, ... by position.",
            },
            "text": {"$ref": "#/$defs/text"},
        },
    )
    | {"required": ["text"]},
    "list_file": {**_LIST_FILE, "required": [FILE_KEY]},
    # 'parent' (each parent image's own ratio) only in a derived job (from:).
    "aspect_ratio": {"enum": [*SUPPORTED_ASPECT_RATIOS, PARENT_RATIO]},
    "image_size": {
        # An unquoted 512 is a number in YAML; the reader takes it as written.
        "enum": [
            *SUPPORTED_IMAGE_SIZES,
            *(int(size) for size in SUPPORTED_IMAGE_SIZES if size.isdigit()),
        ]
    },
    "reference_set": {
        "anyOf": [
            {"$ref": "#/$defs/path"},
            {
                "type": "array",
                "maxItems": MAX_REFERENCES_PER_SET,
                "uniqueItems": True,
                "items": {"$ref": "#/$defs/path"},
            },
        ],
        "description": "Image paths sent together in one request; [] for text only.",
    },
    "matrix_entry": {
        "type": "object",
        "minProperties": 1,
        "properties": _mapping(
            MATRIX_AXIS_KEYS,
            {
                "prompt": {"type": "string", "description": "A prompt id."},
                "aspect_ratio": {"$ref": "#/$defs/aspect_ratio"},
                "image_size": {"$ref": "#/$defs/image_size"},
                "references": {
                    "anyOf": [
                        {
                            "type": "integer",
                            "minimum": 0,
                            "description": "0-based index on the references axis.",
                        },
                        {"$ref": "#/$defs/reference_set"},
                        {"type": "null"},
                    ]
                },
                "sample": {"type": "integer", "minimum": 1, "maximum": MAX_SAMPLES},
            },
        )["properties"],
        "additionalProperties": {
            "$ref": "#/$defs/value",
            "description": "A var name: the value of that var.",
        },
    },
}
