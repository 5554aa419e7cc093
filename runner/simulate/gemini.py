"""The Gemini generateContent protocol as the simulator speaks it.

Owns: the route, reading a request body (`parse_generate`), usageMetadata, image and
no-image answer bodies, Google and relay error bodies, the API-key check and response
ids. Must not choose faults, draw images, keep counters or touch a socket.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import io
import json
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import Image

from runner.simulate.canvas import ASPECT_RATIOS, IMAGE_SIZES
from runner.simulate.schema import check, violations_body
from runner.simulate.wire import Reply

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from runner.simulate.stats import Counters

CANDIDATE_TOKENS: Mapping[str, int] = {"512": 747, "1K": 1120, "2K": 1680, "4K": 2520}
REFERENCE_IMAGE_TOKENS = 258
# group 1 the API version, group 2 the model
GENERATE_PATH = re.compile(r"^/(v1(?:beta|alpha)?)/models/([^/:]+):generateContent$")
# The answers that carry no image, each with the body the real API sends for it.
NO_IMAGE_KINDS = frozenset(
    {
        "blocked-prompt",
        "blocked-finish",
        "text-only",
        "no-image-finish",
        "empty-candidates",
        "image-recitation",
    }
)
# What the relay in front of the model answers for a missing or wrong key.
RELAY_401 = {
    "error": {
        "message": "invalid token",
        "type": "new_api_error",
        "param": "",
        "code": "invalid_api_key",
    }
}

# Google's answer to a key it does not accept in x-goog-api-key (a 400, not a 401),
# as quoted in continuedev/continue#8516 (api-samples/400-google-api-key-invalid.json).
KEY_INVALID = {
    "error": {
        "code": 400,
        "message": "API key not valid. Please pass a valid API key.",
        "status": "INVALID_ARGUMENT",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": "API key not valid. Please pass a valid API key.",
            },
        ],
    }
}


@dataclass(slots=True)
class Answer(Reply):
    """A reply with what the statistics count once it has been sent completely."""

    usage: Mapping[str, Any] | None = None  # counted only once sent completely
    images: int = 0
    on_sent: Callable[[Counters, int], None] | None = None


@dataclass(frozen=True, slots=True)
class Generate:
    """The fields of a generateContent request the simulator answers from."""

    text: str
    reference_count: int
    reference_size: tuple[int, int] | None  # first reference image, if any
    aspect_ratio: str | None
    image_size: str | None
    modalities: tuple[str, ...]


def parse_generate(raw: bytes) -> Generate | Answer:
    """The fields the simulator needs, or the 400 answer the real API would give."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return invalid_argument(f"Invalid JSON payload received. {exc}")
    if isinstance(body, dict) and (violations := check(body)):
        return json_reply(400, violations_body(violations))
    if not isinstance(body, dict) or not isinstance(body.get("contents"), list):
        return invalid_argument(
            "* GenerateContentRequest.contents: contents is not specified"
        )
    texts: list[str] = []
    references: list[bytes] = []
    for content in body["contents"]:
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list):
            return invalid_argument(
                "* GenerateContentRequest.contents.parts: parts is not specified"
            )
        for part in parts:
            if not isinstance(part, dict):
                return invalid_argument(
                    "Invalid value at 'contents.parts': expected an object"
                )
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            inline = _either(part, "inline_data", "inlineData")
            if isinstance(inline, dict):
                try:
                    references.append(base64.b64decode(inline.get("data", "")))
                except (binascii.Error, ValueError, TypeError):
                    return invalid_argument(
                        "Base64 decoding failed for an inline image."
                    )
    config = _either(body, "generationConfig", "generation_config") or {}
    image_config = _either(config, "imageConfig", "image_config") or {}
    ratio = _either(image_config, "aspectRatio", "aspect_ratio")
    size = _either(image_config, "imageSize", "image_size")
    if ratio is not None and ratio not in ASPECT_RATIOS:
        return invalid_argument(f"Unsupported aspect ratio {ratio!r}.")
    if size is not None and size not in IMAGE_SIZES:
        return invalid_argument(f"Unsupported image size {size!r}.")
    reference_size = None
    if references:
        try:
            with Image.open(io.BytesIO(references[0])) as first:
                reference_size = first.size
        except (OSError, ValueError, Image.DecompressionBombError):
            return invalid_argument(
                "Unable to process input image. Please retry or report."
            )
    modalities = _either(config, "responseModalities", "response_modalities") or []
    if not isinstance(modalities, list):  # a repeated field takes a single value too
        modalities = [modalities]
    return Generate(
        text="\n".join(texts),
        reference_count=len(references),
        reference_size=reference_size,
        aspect_ratio=ratio,
        image_size=size,
        modalities=tuple(str(m).upper() for m in modalities),
    )


def usage(gen: Generate) -> dict[str, Any]:
    """The usageMetadata of an image answer to `gen`."""
    text_tokens = len(gen.text) // 4 + 1
    image_tokens = REFERENCE_IMAGE_TOKENS * gen.reference_count
    prompt = text_tokens + image_tokens
    candidates = CANDIDATE_TOKENS[gen.image_size or "1K"]
    thoughts = 64 + hashlib.sha256(gen.text.encode()).digest()[0] % 128
    details = [{"modality": "TEXT", "tokenCount": text_tokens}]
    if image_tokens:
        details.append({"modality": "IMAGE", "tokenCount": image_tokens})
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts,
        "thoughtsTokenCount": thoughts,
        "promptTokensDetails": details,
        "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": candidates}],
    }


def success_body(
    parts: list[dict[str, Any]], usage: dict[str, Any], base: dict[str, Any]
) -> dict[str, Any]:
    """A finished answer with these parts; `base` adds modelVersion and responseId."""
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": parts},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": usage,
        **base,
    }


def no_image_body(kind: str, gen: Generate) -> dict[str, Any]:
    """The answer without an image for one of NO_IMAGE_KINDS."""
    prompt = usage(gen)["promptTokenCount"]
    prompt_only = {"promptTokenCount": prompt, "totalTokenCount": prompt}
    if kind == "blocked-prompt":
        return {
            "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
            "usageMetadata": prompt_only,
        }
    if kind == "blocked-finish":
        return {
            "candidates": [{"finishReason": "IMAGE_SAFETY", "index": 0}],
            "usageMetadata": prompt_only,
        }
    if kind == "image-recitation":
        return {
            "candidates": [{"finishReason": "IMAGE_RECITATION", "index": 0}],
            "usageMetadata": prompt_only,
        }
    if kind == "no-image-finish":
        return {
            "candidates": [{"finishReason": "NO_IMAGE", "index": 0}],
            "usageMetadata": prompt_only,
        }
    if kind == "empty-candidates":
        return {"candidates": [], "usageMetadata": prompt_only}
    text = f"I can describe that scene instead: {gen.text[:80]}"
    answer_tokens = len(text) // 4 + 1
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": text}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": prompt,
            "candidatesTokenCount": answer_tokens,
            "totalTokenCount": prompt + answer_tokens,
        },
    }


def json_reply(
    status: int,
    payload: Any,
    *,
    headers: tuple[tuple[str, str], ...] = (),
    images: int = 0,
) -> Answer:
    """`payload` as compact JSON; its usageMetadata is what the answer counts."""
    usage = payload.get("usageMetadata") if isinstance(payload, dict) else None
    return Answer(status, dumps(payload), headers=headers, usage=usage, images=images)


def error_reply(code: int, message: str, status: str) -> Answer:
    """A Google error answer without details, e.g. 400 INVALID_ARGUMENT."""
    return json_reply(code, google_error(code, message, status))


def invalid_argument(message: str) -> Answer:
    """Google's 400 INVALID_ARGUMENT answer with this message."""
    return error_reply(400, message, "INVALID_ARGUMENT")


def google_error(
    code: int, message: str, status: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The body of a Google API error."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def model_not_found(model: str, version: str) -> dict[str, Any]:
    """Google's 404 for a model name it does not serve (a typo, a retired model)."""
    return google_error(
        404,
        f"models/{model} is not found for API version {version}, or is not "
        "supported for generateContent. Call ListModels to see the list of "
        "available models and their supported methods.",
        "NOT_FOUND",
    )


def retry_info(seconds: float) -> dict[str, Any]:
    """The RetryInfo detail of a Google error: when to try again."""
    return {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": f"{seconds:g}s",
    }


def not_found_page(path: str) -> Answer:
    """Google's front end's HTML 404 page for a path no API serves (unconfirmed
    for this API in particular; it is what googleapis.com hosts answer)."""
    body = _NOT_FOUND_PAGE.replace("PATH", html.escape(path, quote=False))
    return Answer(404, body.encode(), content_type="text/html; charset=UTF-8")


def dumps(payload: Any) -> bytes:
    """Compact JSON, as the real API sends it."""
    return json.dumps(payload, separators=(",", ":")).encode()


def auth_of(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(style, key) of a request: "bearer" or "goog" and the key sent, if any."""
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        return "bearer", token.strip() if scheme.lower() == "bearer" else None
    goog = headers.get("x-goog-api-key")
    if goog is not None:
        return "goog", goog.strip()
    return None, None


def key_digest(key: str) -> bytes:
    """What the server keeps of the key it requires (never the key itself)."""
    return hashlib.sha256(key.encode()).digest()


def key_matches(key: str | None, digest: bytes) -> bool:
    """Whether a request's key is the required one (compared in constant time)."""
    return key is not None and hmac.compare_digest(key_digest(key), digest)


def response_id() -> str:
    """A fresh responseId."""
    return secrets.token_urlsafe(16)


# -- private helpers --------------------------------------------------------------

_NOT_FOUND_PAGE = """<!DOCTYPE html>
<html lang=en>
  <meta charset=utf-8>
  <meta name=viewport content="initial-scale=1, minimum-scale=1, width=device-width">
  <title>Error 404 (Not Found)!!1</title>
  <a href=//www.google.com/><span id=logo aria-label=Google></span></a>
  <p><b>404.</b> <ins>That\u2019s an error.</ins>
  <p>The requested URL <code>PATH</code> was not found on this server.  \
<ins>That\u2019s all we know.</ins>
"""


def _either(mapping: Any, camel: str, snake: str) -> Any:
    if not isinstance(mapping, dict):
        return None
    return mapping[camel] if camel in mapping else mapping.get(snake)
