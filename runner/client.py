"""generateContent over an injected `httpx.AsyncClient`, classified into an `Outcome`.

Owns: the request body, auth headers, timeouts, reading the reply (native inlineData,
relay Markdown data URIs and https URLs), and SPEC section 1 classification. Redacts the
API key before any string is built. Must not retry, sleep, write files or touch the store.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from runner.plan import Request


class Kind(enum.StrEnum):
    SUCCESS = "success"
    BLOCKED = "blocked"  # terminal; not retried by default
    NO_IMAGE = "no_image"  # answered without an image; retried a bounded number
    TRANSIENT = "transient"  # not billed; retry with backoff
    UNKNOWN = "unknown"  # sent, maybe billed, no usable answer
    FATAL_ITEM = "fatal_item"  # other 4xx: this item can never succeed as is
    FATAL_RUN = "fatal_run"  # 401/403/out of balance/per-day quota: stop the run


@dataclass(frozen=True, slots=True)
class Image:
    mime_type: str  # as declared by the answer ('' if none); outputs sniffs bytes
    data: bytes
    source: str = "inline"  # inline | data-uri | url


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Kind
    reason: str  # short, human-readable, key-free; "" for success
    http_status: int | None = None
    retry_after: float | None = None  # seconds, from Retry-After or retryDelay
    usage: Mapping[str, Any] | None = None  # the whole usageMetadata object
    model_version: str | None = None
    response_id: str | None = None
    finish_reason: str | None = None  # finishReason or promptFeedback.blockReason
    images: tuple[Image, ...] = ()
    text: str = ""  # non-thought text parts joined, for the record
    latency: float = 0.0  # seconds from send to full reply
    extra_urls: tuple[str, ...] = field(default=())  # image URLs fetched (relay)


@dataclass(frozen=True, slots=True)
class Endpoint:
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    auth: str = "bearer"  # "bearer" -> Authorization: Bearer; "goog" -> x-goog-api-key


def build_body(request: Request, reference_data: Sequence[bytes]) -> dict[str, Any]:
    """The generateContent JSON body for `request` (reference bytes in order)."""
    raise NotImplementedError


async def generate(
    http: httpx.AsyncClient,
    endpoint: Endpoint,
    request: Request,
    reference_data: Sequence[bytes],
) -> Outcome:
    """Send one generateContent call and classify the reply; never raises on I/O."""
    raise NotImplementedError
