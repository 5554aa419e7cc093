"""2xx answers: a generateContent document classified into an `Outcome`.

Owns: SPEC section 1 for answers that arrived: images (inline, or what `relay` finds
in text), blocked prompts and safety finish reasons, text-only and empty answers,
non-JSON or truncated bodies, and errors that relays send with status 200. Must not
send anything but the relay image fetches, and sees only redacted bodies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from anyio import to_thread

from runner.client import relay
from runner.client.api_errors import classify_error, parse_error
from runner.client.blobs import ImageDataError, decode_image_data
from runner.client.outcome import (
    CUT_KEY,
    MAX_KEPT_TEXT_CHARS,
    Image,
    Kind,
    Outcome,
    clip,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import httpx

    from runner.client.blobs import BlobExtractor

BLOCKED_FINISH_REASONS = frozenset(
    {
        "SAFETY",
        "IMAGE_SAFETY",
        "PROHIBITED_CONTENT",
        "IMAGE_PROHIBITED_CONTENT",
        "RECITATION",
        "IMAGE_RECITATION",
        "BLOCKLIST",
        "SPII",
    }
)


# A document this large (a relay's data URI in a text part, say: the image data of
# `inlineData` is taken out while it streams in) is parsed in a worker thread, so
# that the event loop is not held for the milliseconds json.loads and the data-URI
# decoding take. A plain answer's document is a few KB.
PARSE_OFF_LOOP_BYTES = 256 * 1024


async def classify_answer(
    http: httpx.AsyncClient,
    status: int,
    headers: httpx.Headers,
    body: bytes,
    blobs: BlobExtractor | None,
    max_bytes: int,
    base_url: str,
) -> Outcome:
    """The outcome of a 2xx answer: `body` is the document with its image data
    taken out into `blobs`; relay image URLs are fetched on `http` (those
    `relay.fetch_image` allows for an answer from `base_url`)."""
    if len(body) > PARSE_OFF_LOOP_BYTES:
        read = await to_thread.run_sync(_read, status, headers, body, blobs)
    else:
        read = _read(status, headers, body, blobs)
    if isinstance(read, Outcome):
        return read
    meta, found = read.meta, read.found
    images, urls, finish = found.images, found.urls, read.finish

    # Every image the answer carries is kept: a link that cannot be fetched does
    # not cost the images that did arrive (the answer is paid for either way).
    unfetched: list[str] = []
    for url in urls:
        got = await relay.fetch_image(http, url, max_bytes, base_url)
        if isinstance(got, str):
            unfetched.append(f"could not fetch the image URL {clip(url, 120)}: {got}")
        else:
            images.append(got)
    if urls:
        meta["extra_urls"] = tuple(urls)

    if images:
        return Outcome(Kind.SUCCESS, "; ".join(unfetched), images=tuple(images), **meta)
    if unfetched:
        return Outcome(Kind.UNKNOWN, "; ".join(unfetched), **meta)
    text, finish_message = meta["text"], read.finish_message
    if finish in BLOCKED_FINISH_REASONS:
        reason = f"finishReason {finish}"
        if finish_message:
            reason += f": {clip(finish_message, 120)}"
        return Outcome(Kind.BLOCKED, reason, **meta)
    if not read.candidates:
        reason = "no candidates"
    elif finish not in (None, "STOP"):
        reason = f"finishReason {finish}"
        if text or finish_message:
            reason += f": {clip(text or finish_message or '', 120)}"
    elif text:
        reason = f"answered with text only: {clip(text, 120)}"
    elif found.empty:
        reason = "answered with empty image data"
    else:
        reason = f"empty answer (finishReason {finish or 'missing'})"
    return Outcome(Kind.NO_IMAGE, reason, **meta)


@dataclass(slots=True)
class _Read:
    """What a parsed answer holds before its image URLs are fetched."""

    meta: dict[str, Any]  # the fields every outcome of this answer records
    found: _Found
    finish: str | None
    finish_message: str | None
    candidates: int


def _read(
    status: int, headers: httpx.Headers, body: bytes, blobs: BlobExtractor | None
) -> Outcome | _Read:
    """Parse the document: an Outcome if that settles it (not JSON, an error sent
    with a 2xx, a blocked prompt, bad image data), else what it holds."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        shown = clip(body.decode("utf-8", errors="replace"), 100)
        return Outcome(
            Kind.UNKNOWN,
            f"{status} answer is not valid JSON (truncated?): {shown!r}",
        )
    if not isinstance(data, dict):
        return Outcome(Kind.UNKNOWN, f"{status} answer is not a JSON object")
    if "error" in data and "candidates" not in data:
        # Some relays send errors with status 200; trust the code inside.
        code = data["error"].get("code") if isinstance(data["error"], dict) else None
        if isinstance(code, int) and 400 <= code < 600:
            return classify_error(code, headers, body)
        error = parse_error(body)
        if error.mentions_balance():
            return classify_error(402, headers, body)
        return Outcome(Kind.UNKNOWN, f"answer carried an error: {error.summary(200)}")

    usage = data.get("usageMetadata")
    # What every outcome of this answer records; each return builds its Outcome
    # once (dataclasses.replace costs microseconds per call on the hot path).
    meta: dict[str, Any] = {
        "usage": dict(usage) if isinstance(usage, dict) else None,
        "model_version": _str_or_none(data.get("modelVersion")),
        "response_id": _str_or_none(data.get("responseId")),
    }

    feedback = data.get("promptFeedback")
    if not isinstance(feedback, dict):
        feedback = {}
    if block := feedback.get("blockReason"):
        detail = feedback.get("blockReasonMessage")
        reason = f"prompt blocked: {block}"
        if isinstance(detail, str) and detail:
            reason += f": {clip(detail, 120)}"
        return Outcome(Kind.BLOCKED, reason, finish_reason=str(block), **meta)

    candidates = data.get("candidates")
    if not isinstance(candidates, list):
        candidates = []
    candidates = [c for c in candidates if isinstance(c, dict)]
    finish = _str_or_none(candidates[0].get("finishReason")) if candidates else None
    finish_message = (
        _str_or_none(candidates[0].get("finishMessage")) if candidates else None
    )
    meta["finish_reason"] = finish
    if candidates:
        grounding = candidates[0].get("groundingMetadata")
        meta["grounding"] = grounding if isinstance(grounding, dict) else None
        meta["parts"] = tuple(_kept(part) for part in _parts(candidates[0]))

    try:
        found = _collect(candidates, blobs)
    except ImageDataError as exc:
        return Outcome(Kind.UNKNOWN, str(exc), **meta)
    meta["text"] = "\n".join(found.texts)
    return _Read(meta, found, finish, finish_message, len(candidates))


_MAX_TEXT_CHARS = 4096  # of each text part, kept for reasons (clipped far shorter)


@dataclass(slots=True)
class _Found:
    images: list[Image] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # non-thought, data URIs elided
    urls: list[str] = field(default_factory=list)  # image links to fetch
    empty: int = 0  # images with no data


def _collect(
    candidates: Sequence[Mapping[str, Any]], blobs: BlobExtractor | None = None
) -> _Found:
    """The non-thought images, texts and image URLs of every candidate; an image
    of the first candidate knows its part (`Image.part`, an index of `_parts`)."""
    found = _Found()
    for number, candidate in enumerate(candidates):
        for index, part in enumerate(_parts(candidate)):
            if part.get("thought") is True:
                continue  # interim images and thought summaries are not outputs
            inline = part.get("inlineData", part.get("inline_data"))
            if isinstance(inline, dict):
                _add_inline(found, inline, blobs, index if number == 0 else None)
            file_data = part.get("fileData", part.get("file_data"))
            if isinstance(file_data, dict):
                uri = file_data.get("fileUri", file_data.get("file_uri"))
                if isinstance(uri, str) and uri.startswith(("http://", "https://")):
                    _add_url(found.urls, uri)
            text = part.get("text")
            if isinstance(text, str) and text:
                images, links, blank, text = relay.images_in_text(text)
                found.images += images
                found.empty += blank
                for url in links:
                    _add_url(found.urls, url)
                # Text only ever ends up in a clipped reason.
                found.texts.append(text[:_MAX_TEXT_CHARS])
    return found


def _parts(candidate: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def _add_inline(
    found: _Found,
    inline: Mapping[str, Any],
    blobs: BlobExtractor | None,
    part: int | None,
) -> None:
    payload = inline.get("data")
    mime = inline.get("mimeType", inline.get("mime_type"))
    if not payload:
        found.empty += 1
        return
    mime = mime if isinstance(mime, str) else ""
    blob = blobs.blob_for(payload) if blobs is not None else None
    if blob is None:
        data = decode_image_data(payload, "inlineData")
        found.images.append(Image(mime, data, part=part))
    elif blob.error is not None:
        raise ImageDataError(f"{blob.error} in inlineData")
    elif blob.size == 0:
        found.empty += 1
    else:
        found.images.append(Image(mime, bytes(blob.data), path=blob.path, part=part))


def _kept(part: Mapping[str, Any]) -> dict[str, Any]:
    """A part as the store keeps it (see outcome.FILE_KEY): image bytes out (also
    a data URI's), a relay's padding cut, everything else as it came."""
    kept = dict(part)
    for key in ("inlineData", "inline_data"):
        inline = kept.get(key)
        if isinstance(inline, dict) and "data" in inline:
            kept[key] = {k: v for k, v in inline.items() if k != "data"}
    text = kept.get("text")
    if isinstance(text, str):
        if len(text) > MAX_KEPT_TEXT_CHARS:
            kept[CUT_KEY] = len(text)
            text = text[:MAX_KEPT_TEXT_CHARS]
        kept["text"] = relay.without_image_data(text)
    return kept


def _add_url(urls: list[str], url: str) -> None:
    if url not in urls:
        urls.append(url)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
