"""The Gemini generateContent answers as the simulator speaks them.

Owns: the routes, usageMetadata, image and no-image answer bodies, thought signatures,
grounding metadata, Google and relay error bodies and their google.rpc.Status form (a
batch line's error), the API-key check and response ids.
Must not read request bodies (request.py), choose faults, draw images, keep counters
or touch a socket.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import secrets
import string
import time
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.simulate.wire import Reply

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from runner.simulate.models import ModelSpec
    from runner.simulate.request import Generate
    from runner.simulate.stats import Counters

# group 1 the API version, group 2 the model
GENERATE_PATH = re.compile(r"^/(v1(?:beta|alpha)?)/models/([^/:]+):generateContent$")
BATCH_CREATE_PATH = re.compile(
    r"^/(v1(?:beta|alpha)?)/models/([^/:]+):batchGenerateContent$"
)
# google.rpc.Code numbers by status name, and by HTTP status for an error body that
# names none (a relay's), from googleapis/googleapis google/rpc/code.proto (each
# code's "HTTP Mapping"); 502 and 408 are not mapped there and are guesses.
RPC_CODES = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}
_RPC_BY_HTTP = {
    400: 3,
    401: 16,
    403: 7,
    404: 5,
    408: 4,
    409: 10,
    429: 8,
    499: 1,
    500: 13,
    501: 12,
    502: 14,
    503: 14,
    504: 4,
}
# Google's message for an internal error (its 500 body reads the same).
INTERNAL_STATUS: dict[str, Any] = {
    "code": RPC_CODES["INTERNAL"],
    "message": "Internal error encountered.",
}
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
    signatures: tuple[str, ...] = ()  # thought signatures the answer issues


@dataclass(frozen=True, slots=True)
class Target:
    """The model a request names, and what the server answers for it with."""

    model: str
    version: str  # the URL's API version, e.g. v1beta
    spec: ModelSpec
    image_tokens: int  # billed per input image
    thought_images: int  # interim images of a thinking model asked for thoughts
    thoughts_tokens: int | None = None  # thinking billed per answer (None: 64-191)
    images_per_answer: int = 1  # final images in one answer


def usage(
    gen: Generate,
    spec: ModelSpec,
    *,
    image_tokens: int,
    text: str | None = None,
    thoughts: int | None = None,
    images: int = 1,
) -> dict[str, Any]:
    """The usageMetadata of an image answer to `gen` by a `spec` model, billing
    `image_tokens` per input image, `text` as a final text part, if any, `images`
    final images and `thoughts` thinking tokens (None: 64 to 191, by the prompt)."""
    text_tokens = len(gen.text) // 4 + 1
    input_images = image_tokens * gen.reference_count
    prompt = text_tokens + input_images
    image_out = spec.candidate_tokens(gen.image_size) * images
    text_out = len(text) // 4 + 1 if text else 0
    candidates = image_out + text_out
    if thoughts is None:
        thoughts = 64 + hashlib.sha256(gen.text.encode()).digest()[0] % 128
    details = [{"modality": "TEXT", "tokenCount": text_tokens}]
    if input_images:
        details.append({"modality": "IMAGE", "tokenCount": input_images})
    out_details = [{"modality": "TEXT", "tokenCount": text_out}] if text_out else []
    out_details.append({"modality": "IMAGE", "tokenCount": image_out})
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts,
        "thoughtsTokenCount": thoughts,
        "promptTokensDetails": details,
        "candidatesTokensDetails": out_details,
    }


def prompt_tokens(gen: Generate, image_tokens: int) -> int:
    """What the prompt of `gen` is billed, at `image_tokens` per input image."""
    return len(gen.text) // 4 + 1 + image_tokens * gen.reference_count


def success_body(
    parts: list[dict[str, Any]],
    usage: dict[str, Any],
    base: dict[str, Any],
    grounding: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A finished answer with these parts; `base` adds modelVersion and responseId."""
    candidate: dict[str, Any] = {
        "content": {"role": "model", "parts": parts},
        "finishReason": "STOP",
        "index": 0,
    }
    if grounding is not None:
        candidate["groundingMetadata"] = grounding
    return {"candidates": [candidate], "usageMetadata": usage, **base}


def thought_signature() -> str:
    """An opaque signature for a final part (Google's are encrypted state). It ends
    in "+/+/", so the URL-safe form a client like google-genai sends back differs."""
    return base64.b64encode(secrets.token_bytes(45) + b"\xfb\xff\xbf").decode("ascii")


def invalid_signature(content: int) -> dict[str, Any]:
    """The 400 for a thoughtSignature the model never issued (a tampered or made-up
    one, or one of another model). Google's docs say a Gemini 3 model answers 400
    when a required signature is not passed back "exactly as received"
    (ai.google.dev/gemini-api/docs/thought-signatures; cloud.google.com/vertex-ai/
    generative-ai/docs/thought-signatures, which adds that Gemini 3 Pro Image does
    not enforce a missing one, so a missing signature is answered here). The
    wording of the refusal of an invalid one is as users quote it for Nano Banana 2
    (blog.laozhang.ai/en/posts/nano-banana-2-thought-signature-error): unconfirmed."""
    return google_error(
        400,
        "Unable to submit request because it has an invalid thought signature "
        f"for content at index {content}.",
        "INVALID_ARGUMENT",
    )


def grounding_metadata(prompt: str, answer_text: str | None) -> dict[str, Any]:
    """Plausible groundingMetadata for a Google Search grounded answer to `prompt`,
    with field names from google-genai's types.GroundingMetadata. Supports are given
    only for a final text part, the only text they could point into."""
    query = " ".join(prompt.split()[:8]) or "image"
    digest = hashlib.sha256(prompt.encode()).hexdigest()
    chunks = [
        {
            "web": {
                "uri": "https://vertexaisearch.cloud.google.com/grounding-api-"
                f"redirect/{digest[i * 16 : i * 16 + 16]}",
                "title": title,
            }
        }
        for i, title in enumerate(("wikipedia.org", "example.com", "example.org"))
    ]
    chip = html.escape(query)
    search = f"https://www.google.com/search?q={urllib.parse.quote_plus(query)}"
    metadata: dict[str, Any] = {
        "searchEntryPoint": {
            "renderedContent": (
                "<style>.container{display:flex;gap:8px}.chip{border-radius:16px;"
                "padding:4px 12px;border:1px solid #ddd}</style>"
                f'<div class="container"><a class="chip" href="{html.escape(search)}">'
                f"{chip}</a></div>"
            )
        },
        "groundingChunks": chunks,
        "webSearchQueries": [query],
    }
    if answer_text:
        encoded = len(answer_text.encode())
        metadata["groundingSupports"] = [
            {
                "segment": {"startIndex": 0, "endIndex": encoded, "text": answer_text},
                "groundingChunkIndices": [0, 1],
            }
        ]
    return metadata


def no_image_body(kind: str, gen: Generate, image_tokens: int) -> dict[str, Any]:
    """The answer without an image for one of NO_IMAGE_KINDS."""
    prompt = prompt_tokens(gen, image_tokens)
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


def google_error(
    code: int, message: str, status: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The body of a Google API error."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def rpc_status(status: int, body: bytes) -> dict[str, Any]:
    """The google.rpc.Status of an error answer (`status`, `body`): how a batch
    line carries the error its generateContent request would have got. Google's
    `{"error": {"code": 400, "status": "INVALID_ARGUMENT", ...}}` becomes `{"code":
    3, "message", "details"}` (the Status shape of ai.google.dev/api/batch-api,
    InlinedResponse.error); a relay's body, by its HTTP status."""
    try:
        error = json.loads(body)["error"]
        message = str(error["message"])
    except (ValueError, KeyError, TypeError):
        return dict(INTERNAL_STATUS)
    name = error.get("status") if isinstance(error, dict) else None
    code = RPC_CODES.get(name) if isinstance(name, str) else None
    if code is None:
        code = _RPC_BY_HTTP.get(status, RPC_CODES["UNKNOWN"])
    result: dict[str, Any] = {"code": code, "message": message}
    if error.get("details"):
        result["details"] = error["details"]
    return result


def relay_not_found(method: str, path: str) -> Answer:
    """What the relay (new-api) answers for a route it does not serve, such as the
    Batch and Files APIs: controller/relay.go RelayNotFound in QuantumNous/new-api
    (and one-api before it), a 404 with an OpenAI-style error."""
    return json_reply(
        404,
        {
            "error": {
                "message": f"Invalid URL ({method} {path})",
                "type": "invalid_request_error",
                "param": "",
                "code": "",
            }
        },
    )


def not_found_entity() -> Answer:
    """Google's 404 for a resource name that does not exist (a batch, a file)."""
    return error_reply(404, "Requested entity was not found.", "NOT_FOUND")


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


def resource_id(length: int) -> str:
    """A fresh resource id the way Google's look: lowercase letters and digits
    ("batches/4m855v7q30kc7gtzcigdg9m72o87s08w33vp", "files/voe5u4gdj968" in
    answers quoted from the real API)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def timestamp(ns: int) -> str:
    """An RFC 3339 time with nine fractional digits, as Google writes them
    ("2025-12-10T18:27:01.407650525Z")."""
    seconds, fraction = divmod(ns, 10**9)
    day_time = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{day_time}.{fraction:09d}Z"


# -- private helpers --------------------------------------------------------------

_ID_ALPHABET = string.ascii_lowercase + string.digits
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
