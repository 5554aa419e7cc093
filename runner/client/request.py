"""The generateContent HTTP request: where it goes, its headers and its JSON body.

Owns: `Endpoint` (base URL, key, auth style), the endpoint URL, the auth headers and
the request body built from a planned `Request` (a derived `continue` sends its
earlier turns first, each image's bytes put back in its part). A request that
cannot be sent at all (a bad base URL, a key no header can carry) raises `Refused`
with the outcome to report. Must not send anything or read a reply.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

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


def build_body(request: Request, reference_data: Sequence[bytes]) -> dict[str, Any]:
    """The generateContent JSON body for `request`; `reference_data` holds the bytes
    of each of `request.inline_files`, in order."""
    if len(reference_data) != len(request.inline_files):
        raise ValueError(
            f"{len(request.inline_files)} references but {len(reference_data)} "
            "byte strings given"
        )
    data = iter(reference_data)
    contents = [_turn(turn, data) for turn in request.history]
    parts: list[dict[str, Any]] = [{"text": request.text}]
    for ref in request.references:
        parts.append(
            {"inline_data": {"mime_type": ref.mime_type, "data": _b64(next(data))}}
        )

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


def _turn(turn: Turn, data: Iterator[bytes]) -> dict[str, Any]:
    """An earlier turn as it was sent or answered: every part verbatim (a model
    turn's `thoughtSignature`s included), each image's bytes in place of FILE."""
    images = [next(data) for _ in turn.files]
    parts = []
    for part in turn.parts:
        part = dict(part)
        for key in ("inlineData", "inline_data"):
            inline = part.get(key)
            if isinstance(inline, Mapping) and FILE in inline:
                kept = {k: v for k, v in inline.items() if k != FILE}
                part[key] = {**kept, "data": _b64(images[inline[FILE]])}
        parts.append(part)
    return {"role": turn.role, "parts": parts}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)
