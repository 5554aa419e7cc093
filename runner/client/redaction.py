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
    return _masked(text, _secret_forms(secret))


def seal(outcome: Outcome, secret: str | None) -> Outcome:
    """The single choke point every outcome passes: redact, then shorten."""
    forms = _secret_forms(secret)  # once: quoting the key for each string costs
    if not forms:
        return dataclasses.replace(
            outcome, reason=clip(outcome.reason, MAX_REASON_CHARS)
        )
    return dataclasses.replace(
        outcome,
        reason=clip(_masked(outcome.reason, forms), MAX_REASON_CHARS),
        text=_masked(outcome.text, forms),
        finish_reason=_masked_or_none(outcome.finish_reason, forms),
        extra_urls=tuple(_masked(u, forms) for u in outcome.extra_urls),
        usage=_redact_obj(outcome.usage, forms),
        model_version=_masked_or_none(outcome.model_version, forms),
        response_id=_masked_or_none(outcome.response_id, forms),
        parts=tuple(_redact_obj(part, forms) for part in outcome.parts),
        grounding=_redact_obj(outcome.grounding, forms),
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


def _masked(text: str, forms: set[str]) -> str:
    for form in forms:
        text = text.replace(form, _MASK)
    return text


def _masked_or_none(text: str | None, forms: set[str]) -> str | None:
    return None if text is None else _masked(text, forms)


def _redact_obj(value: Any, forms: set[str]) -> Any:
    if not forms or value is None:
        return value
    if isinstance(value, str):
        return _masked(value, forms)
    if isinstance(value, Mapping):
        return {_masked(str(k), forms): _redact_obj(v, forms) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_obj(v, forms) for v in value]
    return value
