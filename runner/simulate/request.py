"""A generateContent request as the simulated API reads it.

Owns: the body through schema.py, inline image data and thought signatures as strict
base64, the turns, the settings the simulator answers from (`Generate`), and what a
model refuses (ratios, sizes, candidates, image counts, grounding). Must not choose
faults, draw images or build answers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import Image

from runner.simulate.gemini import google_error
from runner.simulate.schema import (
    GENERATION_CONFIG,
    Violation,
    check,
    enum_name,
    invalid_value,
    violations_body,
)

if TYPE_CHECKING:
    from runner.simulate.models import ModelSpec
    from runner.simulate.stats import PartShape, TurnShape

# How much of a value that is not base64 a refusal quotes (Google's parser quotes it
# whole as far as anyone has posted; a cut keeps a 10 MB mistake out of logs).
QUOTE_LIMIT = 200
_URL_SAFE = str.maketrans("-_", "+/")
_MODALITIES = next(
    f for f in GENERATION_CONFIG.fields if f.proto == "response_modalities"
)


@dataclass(frozen=True, slots=True)
class Generate:
    """The fields of a generateContent request the simulator answers from."""

    text: str  # the text of the user's turns
    reference_count: int  # inline images in every turn (all are billed as input)
    reference_size: tuple[int, int] | None  # the first image of a user turn
    aspect_ratio: str | None
    image_size: str | None
    modalities: tuple[str, ...]
    candidate_count: int = 1
    include_thoughts: bool = False
    grounded: bool = False  # tools hold google_search
    # every thoughtSignature sent back, decoded, with the index of its content
    signatures: tuple[tuple[int, bytes], ...] = ()
    contents: tuple[TurnShape, ...] = ()  # each turn's parts, for the statistics


def parse_generate(raw: bytes) -> Generate | dict[str, Any]:
    """The fields the simulator needs, or the body of the 400 the real API gives."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _invalid(f"Invalid JSON payload received. {exc}")
    if isinstance(body, dict) and (violations := check(body)):
        return violations_body(violations)
    if not isinstance(body, dict) or not isinstance(body.get("contents"), list):
        return _invalid("* GenerateContentRequest.contents: contents is not specified")
    texts: list[str] = []
    images: list[bytes] = []
    first_user_image: bytes | None = None
    found: list[Violation] = []
    signatures: list[tuple[int, bytes]] = []
    turns: list[TurnShape] = []
    for i, content in enumerate(body["contents"]):
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list):
            return _invalid(
                "* GenerateContentRequest.contents.parts: parts is not specified"
            )
        from_model = content.get("role") == "model"
        shapes: list[PartShape] = []
        for j, part in enumerate(parts):
            if not isinstance(part, dict):
                return _invalid("Invalid value at 'contents.parts': expected an object")
            where = f"contents[{i}].parts[{j}]"
            if isinstance(part.get("text"), str) and not from_model:
                texts.append(part["text"])
            signature = _either(part, "thoughtSignature", "thought_signature")
            if signature is not None:
                signed = _bytes_field(signature, f"{where}.thought_signature", found)
                if signed is not None:
                    signatures.append((i, signed))
            inline = _either(part, "inlineData", "inline_data")
            data = None
            if isinstance(inline, dict):
                data = _bytes_field(
                    inline.get("data"), f"{where}.inline_data.data", found
                )
                if data is not None:
                    images.append(data)
                    if first_user_image is None and not from_model:
                        first_user_image = data
            shapes.append(_shape(part, inline, data, signature is not None))
        turns.append({"role": content.get("role"), "parts": tuple(shapes)})
    if found:
        return violations_body(found)
    reference_size = None
    if first_user_image is not None:
        try:
            with Image.open(io.BytesIO(first_user_image)) as first:
                reference_size = first.size
        except (OSError, ValueError, Image.DecompressionBombError):
            return _invalid(
                "Unable to process input image. Please retry or report in "
                "https://developers.generativeai.google/guide/troubleshooting"
            )
    config = _either(body, "generationConfig", "generation_config") or {}
    image_config = _either(config, "imageConfig", "image_config") or {}
    thinking = _either(config, "thinkingConfig", "thinking_config") or {}
    modalities = _either(config, "responseModalities", "response_modalities") or []
    if not isinstance(modalities, list):  # a repeated field takes a single value too
        modalities = [modalities]
    count = _either(config, "candidateCount", "candidate_count")
    return Generate(
        text="\n".join(texts),
        reference_count=len(images),
        reference_size=reference_size,
        aspect_ratio=_either(image_config, "aspectRatio", "aspect_ratio"),
        image_size=_either(image_config, "imageSize", "image_size"),
        modalities=tuple(enum_name(_MODALITIES, m) or "" for m in modalities),
        candidate_count=1 if count is None else int(float(count)),
        include_thoughts=_either(thinking, "includeThoughts", "include_thoughts")
        is True,
        grounded=_grounded(body.get("tools")),
        signatures=tuple(signatures),
        contents=tuple(turns),
    )


def refusal(gen: Generate, spec: ModelSpec) -> dict[str, Any] | None:
    """The 400 a model gives for a request it cannot do, None if it can.

    The ratio message is Google's (muyouzhi6/astrbot_plugin_gitee_aiimg#37), the
    candidates one is api-samples/400-google-multiple-candidates.json. Unconfirmed,
    worded by analogy with those: an image size the model lacks, an image size on a
    model without the setting, too many images, and grounding on a model without it.
    """
    if gen.candidate_count > 1:
        return _invalid("Multiple candidates is not enabled for this model")
    if gen.aspect_ratio is not None and gen.aspect_ratio not in spec.ratios:
        return _invalid(_must_be_one_of("aspect_ratio", tuple(spec.ratios)))
    if gen.image_size is not None and not spec.sizes:
        return _invalid("Image size is not enabled for this model")
    if gen.image_size is not None and gen.image_size not in spec.sizes:
        return _invalid(_must_be_one_of("image_size", spec.sizes))
    if gen.reference_count > spec.max_images:
        return _invalid(
            f"* GenerateContentRequest.contents: the request holds "
            f"{gen.reference_count} images; this model accepts at most "
            f"{spec.max_images}.\n"
        )
    if gen.grounded and not spec.grounding:
        return _invalid("Search Grounding is not supported.")
    return None


def decode_base64(value: str) -> bytes | None:
    """The bytes of a proto3 JSON `bytes` value, None if it is not base64.

    Standard or URL-safe alphabet, padded or not (protobuf.dev/programming-guides/
    json, "bytes"): google-genai sends URL-safe (google/genai/_common.py,
    encode_unserializable_types uses base64.urlsafe_b64encode). One value uses one
    alphabet; whitespace is refused (unconfirmed: Google's decoder may skip it).
    """
    if ("-" in value or "_" in value) and ("+" in value or "/" in value):
        return None
    core = value.rstrip("=")
    padding = len(value) - len(core)
    if padding and (padding > 2 or len(value) % 4):
        return None  # Python's decoder would let surplus "=" through
    text = core.translate(_URL_SAFE)
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


# -- private helpers --------------------------------------------------------------


def _bytes_field(value: Any, path: str, found: list[Violation]) -> bytes | None:
    """`value` decoded as a bytes field, or None with the parser's refusal added
    (worded as Google's front end words it for Cloud Vision's bytes fields, quoted
    in thangman22/google-cloud-vision-php#10)."""
    if not isinstance(value, str):
        found.append(invalid_value(path, "TYPE_BYTES", value))
        return None
    data = decode_base64(value)
    if data is None:
        quoted = value if len(value) <= QUOTE_LIMIT else value[:QUOTE_LIMIT] + "..."
        found.append(
            Violation(
                path,
                f"Invalid value at '{path}' (TYPE_BYTES), Base64 decoding failed "
                f'for "{quoted}"',
            )
        )
    return data


def _must_be_one_of(field: str, values: tuple[str, ...]) -> str:
    listed = ", ".join(f"'{v}'" for v in values[:-1]) + f", or '{values[-1]}'"
    return (
        f"* GenerateContentRequest.generation_config.image_config.{field}: "
        f"{field} must be one of {listed}.\n"
    )


def _shape(
    part: dict[str, Any], inline: Any, data: bytes | None, signed: bool
) -> PartShape:
    """What the statistics keep of a part: its kind, an image's hash, its flags."""
    image = isinstance(inline, dict)
    if image:
        kind = "image"
    elif isinstance(part.get("text"), str):
        kind = "text"
    else:
        kind = "other"
    mime = _either(inline, "mimeType", "mime_type") if image else None
    return {
        "kind": kind,
        "sha256": None if data is None else hashlib.sha256(data).hexdigest(),
        "mime_type": mime if isinstance(mime, str) else None,
        "signed": signed,
        "thought": part.get("thought") is True,
    }


def _grounded(tools: Any) -> bool:
    if isinstance(tools, dict):
        tools = [tools]
    if not isinstance(tools, list):
        return False
    return any(
        isinstance(tool, dict)
        and _either(tool, "googleSearch", "google_search") is not None
        for tool in tools
    )


def _invalid(message: str) -> dict[str, Any]:
    return google_error(400, message, "INVALID_ARGUMENT")


def _either(mapping: Any, camel: str, snake: str) -> Any:
    if not isinstance(mapping, dict):
        return None
    return mapping[camel] if camel in mapping else mapping.get(snake)
