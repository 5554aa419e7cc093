"""generateContent over an injected `httpx.AsyncClient`, classified into an `Outcome`.

The package's public names, one module per concept: `request` (what is sent),
`transport` (the HTTP client and its pools), `call` (`generate`), `answer` and
`api_errors` (SPEC section 1 classification), `relay` (images in text and URLs),
`redaction` (the key never leaves), `blobs` (streamed image data), `outcome`.
Nothing here may retry, sleep, write files but spooled images, or touch the store.
"""

from __future__ import annotations

from runner.client import batch
from runner.client.answer import BLOCKED_FINISH_REASONS
from runner.client.api_errors import TRANSIENT_STATUSES
from runner.client.call import DEFAULT_MAX_RESPONSE_BYTES, generate
from runner.client.outcome import MAX_REASON_CHARS, Image, Kind, Outcome
from runner.client.redaction import redact
from runner.client.relay import DEFAULT_URL_FETCH_TIMEOUT
from runner.client.request import Endpoint, InlineImage, build_body, endpoint_url
from runner.client.transport import (
    DEFAULT_TIMEOUT,
    POOL_SHARD_SIZE,
    URL_FETCH_CONNECTIONS,
    make_http_client,
)

__all__ = [
    "BLOCKED_FINISH_REASONS",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL_FETCH_TIMEOUT",
    "MAX_REASON_CHARS",
    "POOL_SHARD_SIZE",
    "TRANSIENT_STATUSES",
    "URL_FETCH_CONNECTIONS",
    "Endpoint",
    "Image",
    "InlineImage",
    "Kind",
    "Outcome",
    "batch",
    "build_body",
    "endpoint_url",
    "generate",
    "make_http_client",
    "redact",
]
