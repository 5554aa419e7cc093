"""Keeping the API key out of everything a call returns.

Owns: masking the key in the forms it may come back in (plain, URL-encoded, with
JSON-escaped '/'), in the raw reply bytes before they are parsed, and in every field
of an `Outcome` (`seal`, the one choke point before an outcome leaves the client).
Must not log, send or keep the key anywhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from runner.client.outcome import MAX_REASON_CHARS, Outcome, clip


def redact(text: str, secret: str | None) -> str:
    """`text` with every occurrence of `secret` (plain or URL-encoded) masked."""
    for form in _secret_forms(secret):
        text = text.replace(form, _MASK)
    return text


def seal(outcome: Outcome, secret: str | None) -> Outcome:
    """The single choke point every outcome passes: redact, then shorten."""
    return dataclasses.replace(
        outcome,
        reason=clip(redact(outcome.reason, secret), MAX_REASON_CHARS),
        text=redact(outcome.text, secret),
        finish_reason=(
            None
            if outcome.finish_reason is None
            else redact(outcome.finish_reason, secret)
        ),
        extra_urls=tuple(redact(u, secret) for u in outcome.extra_urls),
        usage=_redact_obj(outcome.usage, secret),
        model_version=(
            None
            if outcome.model_version is None
            else redact(outcome.model_version, secret)
        ),
        response_id=(
            None if outcome.response_id is None else redact(outcome.response_id, secret)
        ),
        parts=tuple(_redact_obj(part, secret) for part in outcome.parts),
        grounding=_redact_obj(outcome.grounding, secret),
    )


def redact_bytes(data: bytes, secret: str | None) -> bytes:
    """A reply body with the key masked, before any reason is cut from it."""
    # A very short "key" would match inside base64 image data (a data URI in a
    # text part) and corrupt it; the final strings are still redacted by seal.
    if secret is None or len(secret) < _MIN_BYTE_REDACT:
        return data
    for form in _secret_forms(secret):
        encoded = form.encode("utf-8")
        if encoded in data:
            data = data.replace(encoded, _MASK.encode("ascii"))
    return data


_MASK = "[REDACTED]"
_MIN_BYTE_REDACT = 8


def _secret_forms(secret: str | None) -> set[str]:
    """The key as it may come back: plain, URL-encoded, or with JSON-escaped '/'."""
    if not secret:
        return set()
    return {secret, quote(secret, safe=""), secret.replace("/", "\\/")}


def _redact_obj(value: Any, secret: str | None) -> Any:
    if not secret or value is None:
        return value
    if isinstance(value, str):
        return redact(value, secret)
    if isinstance(value, Mapping):
        return {
            redact(str(k), secret): _redact_obj(v, secret) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact_obj(v, secret) for v in value]
    return value
