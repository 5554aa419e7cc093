"""The generateContent HTTP request: where it goes, its headers and its JSON body.

Owns: `Endpoint` (base URL, key, auth style), the endpoint URL, the auth headers and
the request body built from a planned `Request` (a derived `continue` sends its
earlier turns first, each image's bytes put back in its part), with images as
base64 encoded once (`InlineImage`) and sent as pieces, not copied into each body.
A request that cannot be sent at all (a bad base URL, a key no header can carry)
raises `Refused` with the outcome to report. Must not send anything or read a reply.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import pybase64

from runner import __version__
from runner.client.outcome import Kind, Outcome
from runner.lineage import FILE

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from runner.lineage import Turn
    from runner.plan import Request

USER_AGENT = f"runner/{__version__}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    auth: str = "bearer"  # "bearer" -> Authorization: Bearer; "goog" -> x-goog-api-key

    def __post_init__(self) -> None:
        if self.auth not in ("bearer", "goog"):
            raise ValueError(f"auth must be 'bearer' or 'goog', not {self.auth!r}")


class Refused(Exception):
    """A request that cannot be sent at all; carries the outcome to report."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


@dataclass(frozen=True, slots=True)
class InlineImage:
    """Image bytes as a request body carries them: their base64 text, encoded once
    and sent with every request that names the image (a run's references)."""

    b64: bytes = field(repr=False)

    @classmethod
    def of(cls, data: bytes) -> InlineImage:
        return cls(pybase64.b64encode(data))


# What an image may be given as: its bytes, or already encoded.
ReferenceData = bytes | InlineImage
# A placeholder for an image's base64 text in the JSON document, then its index.
_MARKER = re.compile(rb'"runner-image-([0-9a-f]{16})-([0-9]+)"')


def build_body(
    request: Request, reference_data: Sequence[ReferenceData]
) -> dict[str, Any]:
    """The generateContent JSON body for `request`; `reference_data` holds each of
    `request.inline_files` (a continued conversation's images, then the
    references), in order."""
    texts = [_inline(data).b64.decode("ascii") for data in reference_data]
    return _body(request, texts)


def encode_body(
    request: Request, reference_data: Sequence[ReferenceData]
) -> list[bytes]:
    """`build_body` as JSON bytes, in pieces to send one after another: the document
    around the images, and each image's base64 text as it was given (a 14-image set
    is neither encoded nor copied again for each request)."""
    images = [_inline(data) for data in reference_data]
    token = secrets.token_hex(8)
    text = json.dumps(
        _body(request, [f"runner-image-{token}-{i}" for i in range(len(images))]),
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    found = [m for m in _MARKER.finditer(text) if m.group(1).decode() == token]
    if len(found) != len(images):  # the prompt holds a marker: astronomically rare
        whole = build_body(request, images)
        return [json.dumps(whole, ensure_ascii=False, separators=(",", ":")).encode()]
    pieces: list[bytes] = []
    start = 0
    for match in found:
        image = images[int(match.group(2))]
        pieces += [text[start : match.start()], b'"', image.b64, b'"']
        start = match.end()
    pieces.append(text[start:])
    return pieces


def _inline(data: ReferenceData) -> InlineImage:
    return data if isinstance(data, InlineImage) else InlineImage.of(data)


def _body(request: Request, image_texts: Sequence[str]) -> dict[str, Any]:
    if len(image_texts) != len(request.inline_files):
        raise ValueError(
            f"{len(request.inline_files)} images but {len(image_texts)} given"
        )
    texts = iter(image_texts)
    contents = [_turn(turn, texts) for turn in request.history]
    parts: list[dict[str, Any]] = [{"text": request.text}]
    for ref in request.references:
        parts.append({"inline_data": {"mime_type": ref.mime_type, "data": next(texts)}})

    axes: dict[str, Any] = {}
    if request.aspect_ratio is not None:
        axes["aspectRatio"] = request.aspect_ratio
    if request.image_size is not None:
        axes["imageSize"] = request.image_size
    config: dict[str, Any] = {"responseModalities": ["IMAGE"]}
    if axes:
        config["imageConfig"] = dict(axes)
    config["candidateCount"] = 1
    for key, value in request.generation.items():
        key = _camel(key)
        if key == "imageConfig" and isinstance(value, Mapping):
            # Axes that are set win; an unset axis leaves the job's own value.
            user = {_camel(k): v for k, v in value.items()}
            config["imageConfig"] = {**user, **axes}
        else:
            config[key] = value

    body: dict[str, Any] = {
        "contents": [*contents, {"role": "user", "parts": parts}],
        "generationConfig": config,
    }
    if request.system_instruction:
        body["systemInstruction"] = {"parts": [{"text": request.system_instruction}]}
    if request.safety_settings:
        body["safetySettings"] = [dict(s) for s in request.safety_settings]
    if request.tools:
        body["tools"] = [dict(t) for t in request.tools]
    return body


def endpoint_url(endpoint: Endpoint, model: str) -> str:
    """`{base_url}/v1beta/models/{model}:generateContent`, tolerant of slashes."""
    base = endpoint.base_url.rstrip("/")
    if base.endswith("/v1beta"):
        base = base[: -len("/v1beta")]
    model = model.removeprefix("models/")
    return f"{base}/v1beta/models/{model}:generateContent"


def checked_url(url: str) -> str:
    """`url` if it is an http(s) URL with a host, else `Refused` (run-fatal)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise Refused(
            Outcome(Kind.FATAL_RUN, f"invalid base URL ({exc}); check the base URL")
        ) from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise Refused(
            Outcome(
                Kind.FATAL_RUN,
                f"the base URL must be an http(s) URL with a host, not {url!r}",
            )
        )
    return url


def request_headers(endpoint: Endpoint, secret: str | None) -> dict[str, str]:
    """Content type, user agent and the key in the endpoint's auth style."""
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
    }
    if secret is None:
        return headers
    if not all(" " < ch < "\x7f" for ch in secret):
        # httpx would raise on it anyway; every request would fail the same way.
        raise Refused(
            Outcome(
                Kind.FATAL_RUN,
                "the API key contains spaces or characters that cannot be sent in "
                "an HTTP header; check the key",
            )
        )
    if endpoint.auth == "goog":
        headers["x-goog-api-key"] = secret
    else:
        headers["Authorization"] = f"Bearer {secret}"
    return headers


def _turn(turn: Turn, texts: Iterator[str]) -> dict[str, Any]:
    """An earlier turn as it was sent or answered: every part verbatim (a model
    turn's `thoughtSignature`s included), each image's base64 text in place of
    FILE."""
    images = [next(texts) for _ in turn.files]
    parts = []
    for part in turn.parts:
        part = dict(part)
        for key in ("inlineData", "inline_data"):
            inline = part.get(key)
            if isinstance(inline, Mapping) and FILE in inline:
                kept = {k: v for k, v in inline.items() if k != FILE}
                part[key] = {**kept, "data": images[inline[FILE]]}
        parts.append(part)
    return {"role": turn.role, "parts": parts}


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)
