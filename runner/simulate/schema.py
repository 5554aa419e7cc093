"""A generateContent body read the way Google's JSON parser reads it into its proto.

Owns: the field names (camelCase or snake_case) of the request's top level and of
generationConfig with its imageConfig and thinkingConfig, their proto types and enum
values, and the 400 INVALID_ARGUMENT the parser answers for a name it does not know
or a value of the wrong type. Must not know models, faults or HTTP.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

# Proto scalar types as the parser names them in its messages.
FLOAT, INT32, BOOL, STRING = "TYPE_FLOAT", "TYPE_INT32", "TYPE_BOOL", "TYPE_STRING"
MESSAGE, ENUM, ANY = "message", "enum", "any"  # ANY: not looked into here
_TYPE_URL = "type.googleapis.com/google.ai.generativelanguage.v1beta."
# proto3 JSON: a number, or a string holding one (protobuf.dev/programming-guides/json).
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_FLOAT_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@dataclass(frozen=True, slots=True)
class Field:
    """One proto field: its JSON (camelCase) and proto (snake_case) names and type."""

    json: str
    proto: str
    kind: str
    repeated: bool = False
    fields: tuple[Field, ...] = ()  # MESSAGE: the fields checked inside
    values: tuple[str, ...] = ()  # ENUM: the value names, in number order
    type_name: str = ""  # MESSAGE, ENUM: the proto type the parser names


def _field(proto: str, kind: str, **extra: Any) -> Field:
    head, *rest = proto.split("_")
    return Field(head + "".join(w.title() for w in rest), proto, kind, **extra)


# GenerationConfig as the Gemini API (v1beta) knows it: the fields google-genai's
# _GenerateContentConfig_to_mldev sends for it (google/genai/models.py), with the types
# of ai.google.dev/api/generate-content#generationconfig. ImageConfig has only ratio
# and size there (_ImageConfig_to_mldev refuses personGeneration and the output
# options as Vertex-only), ThinkingConfig the three fields of types.ThinkingConfig.
IMAGE_CONFIG = _field(
    "image_config",
    MESSAGE,
    fields=(_field("aspect_ratio", STRING), _field("image_size", STRING)),
    type_name="ImageConfig",
)
THINKING_CONFIG = _field(
    "thinking_config",
    MESSAGE,
    fields=(
        _field("include_thoughts", BOOL),
        _field("thinking_budget", INT32),
        _field(
            "thinking_level",
            ENUM,
            values=("THINKING_LEVEL_UNSPECIFIED", "MINIMAL", "LOW", "MEDIUM", "HIGH"),
            type_name="ThinkingConfig.ThinkingLevel",
        ),
    ),
    type_name="ThinkingConfig",
)
GENERATION_CONFIG = _field(
    "generation_config",
    MESSAGE,
    fields=(
        _field("stop_sequences", STRING, repeated=True),
        _field("response_mime_type", STRING),
        _field("response_schema", ANY),
        _field("response_json_schema", ANY),
        Field("_responseJsonSchema", "_response_json_schema", ANY),
        _field(
            "response_modalities",
            ENUM,
            repeated=True,
            values=("MODALITY_UNSPECIFIED", "TEXT", "IMAGE", "AUDIO"),
            type_name="GenerationConfig.Modality",
        ),
        _field("candidate_count", INT32),
        _field("max_output_tokens", INT32),
        _field("temperature", FLOAT),
        _field("top_p", FLOAT),
        _field("top_k", INT32),
        _field("seed", INT32),
        _field("presence_penalty", FLOAT),
        _field("frequency_penalty", FLOAT),
        _field("response_logprobs", BOOL),
        _field("logprobs", INT32),
        _field("enable_enhanced_civic_answers", BOOL),
        _field("speech_config", ANY),
        _field("audio_transcription_config", ANY),
        THINKING_CONFIG,
        IMAGE_CONFIG,
        _field(
            "media_resolution",
            ENUM,
            values=(
                "MEDIA_RESOLUTION_UNSPECIFIED",
                "MEDIA_RESOLUTION_LOW",
                "MEDIA_RESOLUTION_MEDIUM",
                "MEDIA_RESOLUTION_HIGH",
            ),
            type_name="GenerationConfig.MediaResolution",
        ),
    ),
    type_name="GenerationConfig",
)
# GenerateContentRequest's body: what _GenerateContentParameters_to_mldev and
# _GenerateContentConfig_to_mldev put at the top level. Parts and tools are read by
# gemini.py; only the names are checked here.
REQUEST = Field(
    "",
    "",
    MESSAGE,
    fields=(
        _field("model", STRING),
        _field("contents", ANY),
        _field("tools", ANY),
        _field("tool_config", ANY),
        _field("safety_settings", ANY),
        _field("system_instruction", ANY),
        GENERATION_CONFIG,
        _field("cached_content", STRING),
        _field("service_tier", ANY),
    ),
    type_name="GenerateContentRequest",
)


@dataclass(frozen=True, slots=True)
class Violation:
    """One thing the parser could not read: where (proto path) and what it says."""

    field: str  # "" at the top level, where Google's answer names no field
    description: str


def check(body: Mapping[str, Any]) -> list[Violation]:
    """What Google's parser refuses in `body` (a JSON object), in document order."""
    found: list[Violation] = []
    _check_message(REQUEST, body, "", found)
    return found


def violations_body(found: list[Violation]) -> dict[str, Any]:
    """The 400 answer for `found`: every description, and a BadRequest detail."""
    violations = [
        {"field": v.field, "description": v.description}
        if v.field
        else {"description": v.description}
        for v in found
    ]
    return {
        "error": {
            "code": 400,
            "message": "\n".join(v.description for v in found),
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": violations,
                }
            ],
        }
    }


def invalid_value(path: str, type_name: str, value: Any) -> Violation:
    """`Invalid value at 'PATH' (TYPE), VALUE`, as the parser words it (e.g.
    egoist/chatwise-releases#536: (TYPE_INT32), 19660.800000000003)."""
    shown = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return Violation(path, f"Invalid value at '{path}' ({type_name}), {shown}")


def enum_name(field: Field, value: Any) -> str | None:
    """The value name, or None; names match in any case, as the API accepts
    "Image" as well as "IMAGE", and numbers are proto3 JSON's other spelling."""
    if isinstance(value, str):
        upper = value.upper()
        return upper if upper in field.values else None
    if isinstance(value, int) and not isinstance(value, bool):
        return field.values[value] if 0 <= value < len(field.values) else None
    return None


# -- private helpers --------------------------------------------------------------


def _check_message(
    message: Field, value: Mapping[str, Any], path: str, found: list[Violation]
) -> None:
    by_name = {f.json: f for f in message.fields} | {f.proto: f for f in message.fields}
    for name, item in value.items():
        field = by_name.get(name)
        if field is None:
            where = f" at '{path}'" if path else ""
            found.append(
                Violation(
                    path,
                    f'Invalid JSON payload received. Unknown name "{name}"{where}: '
                    "Cannot find field.",
                )
            )
            continue
        if item is None or field.kind == ANY:
            continue  # null means the default, for every field type
        child = f"{path}.{field.proto}" if path else field.proto
        if isinstance(item, list):
            if not field.repeated:
                found.append(
                    Violation(
                        child,
                        "Invalid JSON payload received. "
                        "Proto field is not repeating, cannot start list.",
                    )
                )
                continue
            for index, element in enumerate(item):
                _check_value(field, element, f"{child}[{index}]", found)
        else:
            _check_value(field, item, child, found)


def _check_value(field: Field, value: Any, path: str, found: list[Violation]) -> None:
    if field.kind == MESSAGE:
        if isinstance(value, dict):
            _check_message(field, value, path, found)
        else:
            found.append(invalid_value(path, _TYPE_URL + field.type_name, value))
    elif field.kind == ENUM:
        if enum_name(field, value) is None:
            found.append(invalid_value(path, _TYPE_URL + field.type_name, value))
    elif not _scalar_ok(field.kind, value):
        found.append(invalid_value(path, field.kind, value))


def _scalar_ok(kind: str, value: Any) -> bool:
    if kind == STRING:
        return isinstance(value, str)
    if kind == BOOL:
        return isinstance(value, bool)
    number = _number(value)
    if number is None:
        return False
    if kind == FLOAT:
        return True
    return number.is_integer() and -(2**31) <= number < 2**31


def _number(value: Any) -> float | None:
    """A proto3 JSON number: a JSON number, or a string that spells one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        if value in _FLOAT_WORDS:
            return _FLOAT_WORDS[value]
        if _NUMBER.fullmatch(value):
            return float(value)
    return None
