"""The generateContent client (a first step: everything still lives in `call`)."""

from __future__ import annotations

from runner.client.call import (
    BLOCKED_FINISH_REASONS,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT,
    DEFAULT_URL_FETCH_TIMEOUT,
    MAX_REASON_CHARS,
    POOL_SHARD_SIZE,
    TRANSIENT_STATUSES,
    URL_FETCH_CONNECTIONS,
    Endpoint,
    Image,
    Kind,
    Outcome,
    build_body,
    endpoint_url,
    generate,
    make_http_client,
    redact,
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
    "Kind",
    "Outcome",
    "build_body",
    "endpoint_url",
    "generate",
    "make_http_client",
    "redact",
]
