"""The `generation:` mapping: generationConfig fields, checked by name only.

Owns: the documented field names (either casing), refusing a name close to one
with a "did you mean", passing a name close to none through with a warning (the
API grows new fields), the request fields and runner-owned settings that do not
belong here, and `candidateCount` (one per request). Must not check values.
"""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING, Any

import yaml

from runner.spec.document import INT_TAG
from runner.spec.messages import show
from runner.spec.nodes import given

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runner.spec.nodes import NodeReader

# generationConfig field names, camelCase; snake_case is accepted too, as the API's
# JSON parser takes a field's JSON name or its proto name. Sources: the google-genai
# SDK's types.GenerationConfig (googleapis/python-genai, google/genai/types.py at
# 66807187, 2026-08-21), Google's REST reference for GenerationConfig
# (ai.google.dev/api/generate-content#generationconfig), and imageConfig from the
# REST examples of ai.google.dev/gemini-api/docs/image-generation (the SDK carries
# it on GenerateContentConfig). Fields the SDK marks Vertex-only are kept: a relay
# may sit in front of Vertex AI.
GENERATION_FIELDS = (
    "audioTimestamp", "audioTranscriptionConfig", "candidateCount",
    "enableAffectiveDialog", "enableEnhancedCivicAnswers", "frequencyPenalty",
    "imageConfig", "logprobs", "maxOutputTokens", "mediaResolution",
    "modelSelectionConfig", "presencePenalty", "responseFormat", "responseJsonSchema",
    "responseLogprobs", "responseMimeType", "responseModalities", "responseSchema",
    "routingConfig", "seed", "speechConfig", "stopSequences", "temperature",
    "thinkingConfig", "topK", "topP", "translationConfig",
)  # fmt: skip
# The nested configs image jobs use, checked the same way (types.ThinkingConfig,
# types.ImageConfig in the same SDK commit).
NESTED_FIELDS = {
    "thinkingConfig": ("includeThoughts", "thinkingBudget", "thinkingLevel"),
    "imageConfig": (
        "aspectRatio", "imageSize", "personGeneration", "prominentPeople",
        "outputMimeType", "outputCompressionQuality", "imageOutputOptions",
    ),
}  # fmt: skip
# How close (difflib ratio, letters only, case ignored) an unknown name must be to
# a field to be called a typo and refused; below it, a name passes with a warning.
CLOSE_MATCH = 0.8

# Request fields beside generationConfig that have a job-file key of their own.
REQUEST_FIELDS = {
    "tools": "tools",
    "safetySettings": "safety_settings",
    "systemInstruction": "system_instruction",
}
# imageConfig fields runner sets per cell from an axis.
AXIS_FIELDS = {"aspectRatio": "aspect_ratios", "imageSize": "image_sizes"}


def read_generation(nodes: NodeReader, node: yaml.Node | None) -> dict[str, Any]:
    if node is None:
        return {}
    if not isinstance(node, yaml.MappingNode):
        raise nodes.fail(
            "generation must be a mapping of generationConfig fields, e.g. "
            f"'generation: {{temperature: 0.7}}', got {given(node)}",
            node,
        )
    for key, key_node, value_node in nodes.pairs(node):
        field = _field(nodes, key, key_node, GENERATION_FIELDS, "generation")
        if field == "candidateCount" and not (
            isinstance(value_node, yaml.ScalarNode)
            and value_node.tag == INT_TAG
            and nodes.as_int(value_node) == 1
        ):
            raise nodes.fail(
                f"generation.{key} must be 1: runner sends one candidate per "
                "request; use 'samples:' for more images per cell",
                key_node,
            )
        nested = NESTED_FIELDS.get(field or "")
        if field and nested and isinstance(value_node, yaml.MappingNode):
            where = f"generation.{key}"
            for inner, inner_node, _ in nodes.pairs(value_node):
                inner_field = _field(nodes, inner, inner_node, nested, where, field)
                axis = AXIS_FIELDS.get(inner_field or "")
                if field == "imageConfig" and axis is not None:
                    raise nodes.fail(
                        f"{where}.{inner} is set per cell by runner; use the "
                        f"'{axis}:' key instead",
                        inner_node,
                    )
    result: dict[str, Any] = nodes.plain(node, "generation")
    return result


def snake_case(name: str) -> str:
    """A camelCase field name in snake_case: topK -> top_k."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _field(
    nodes: NodeReader,
    key: str,
    node: yaml.Node,
    fields: Sequence[str],
    where: str,
    config: str = "generationConfig",
) -> str | None:
    """The `config` field a key names (camelCase), refused when it is a near miss;
    None (with a warning) when it names no documented field."""
    for name in fields:
        if key in (name, snake_case(name)):
            return name
    letters = _letters(key)
    if where == "generation":
        _refuse_misplaced(nodes, key, node, letters)
    close = difflib.get_close_matches(
        letters, [_letters(f) for f in fields], n=1, cutoff=CLOSE_MATCH
    )
    if close:
        name = next(f for f in fields if _letters(f) == close[0])
        suggestion = snake_case(name) if "_" in key else name
        raise nodes.fail(
            f"unknown {where} key {show(key)}; did you mean '{suggestion}'? "
            f"({config} field names, in camelCase or snake_case)",
            node,
        )
    nodes.warn(
        f"{where} key {show(key)} is not a documented {config} field; it "
        "is sent as written (Google's API answers 400 INVALID_ARGUMENT to a field "
        "it does not know): check the spelling, or ignore this if your endpoint "
        "takes it",
        node,
    )
    return None


def _refuse_misplaced(
    nodes: NodeReader, key: str, node: yaml.Node, letters: str
) -> None:
    """A request field, an axis, or a nested config's field written at the top."""
    for name, job_key in REQUEST_FIELDS.items():
        if letters == _letters(name):
            raise nodes.fail(
                f"generation.{key} is a request field, not a generationConfig one; "
                f"use the top-level '{job_key}:' key instead",
                node,
            )
    for name, axis in AXIS_FIELDS.items():
        if letters == _letters(name):
            raise nodes.fail(
                f"generation.{key} is set per cell by runner; use the '{axis}:' "
                "key instead",
                node,
            )
    for parent, inner in NESTED_FIELDS.items():
        for name in inner:
            if letters == _letters(name):
                raise nodes.fail(
                    f"generation.{key} belongs inside {parent}: write "
                    f"'generation: {{{parent}: {{{name}: ...}}}}'",
                    node,
                )


def _letters(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())
