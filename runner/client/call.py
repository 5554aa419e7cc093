"""One generateContent call: send the request, read the reply, hand it to a classifier.

Owns: `generate`, the streaming read (image data decoded as it arrives, a size
limit, spilled image files of unused answers deleted), what a failed send means
(transient or possibly billed), and the order of redaction: reply bytes before
parsing, every outcome through `seal`. Must not retry, sleep, write files other
than spooled image data, or touch the store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import httpx
from anyio import to_thread

from runner.client.answer import classify_answer
from runner.client.api_errors import classify_error
from runner.client.blobs import BlobExtractor
from runner.client.outcome import Kind, Outcome, clip, size_text
from runner.client.redaction import redact_bytes, seal
from runner.client.request import (
    Endpoint,
    Refused,
    checked_url,
    encode_body,
    endpoint_url,
    request_headers,
)
from runner.client.transport import RunnerClient, read_limited

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from pathlib import Path

    from runner.client.request import ReferenceData
    from runner.plan import Request

# Two 4K PNGs in base64 stay well under this; anything larger is not an answer.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024


async def generate(
    http: httpx.AsyncClient,
    endpoint: Endpoint,
    request: Request,
    reference_data: Sequence[ReferenceData],
    *,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    spool_dir: Path | None = None,
) -> Outcome:
    """Send one generateContent call and classify the reply; never raises on I/O.

    Reference images are given as bytes or, encoded once for many calls, as
    `InlineImage`s. Image data is decoded while the answer streams in; with
    `spool_dir`, images past a megabyte go to hidden temp files there
    (`Image.path`), which the caller renames into place. Files of answers that are
    not a success are deleted.
    """
    secret = (endpoint.api_key or "").strip() or None
    try:
        return seal(
            await _generate(
                http,
                endpoint,
                secret,
                request,
                reference_data,
                max_response_bytes,
                spool_dir,
            ),
            secret,
        )
    except Refused as refused:
        return seal(refused.outcome, secret)


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    headers: httpx.Headers
    body: bytes  # for a success: the document with image data taken out
    too_large: bool
    blobs: BlobExtractor | None = None


# Error bodies are only read for a reason; no need to hold a large one.
_MAX_ERROR_BODY_BYTES = 64 * 1024
# Image data spilled to a temp file is written from a worker thread (a write may
# block while the kernel holds back a writer of many dirty pages) once this much
# has gathered, and when the answer ends.
SPOOL_FLUSH_BYTES = 256 * 1024


async def _generate(
    http: httpx.AsyncClient,
    endpoint: Endpoint,
    secret: str | None,
    request: Request,
    reference_data: Sequence[ReferenceData],
    max_bytes: int,
    spool_dir: Path | None,
) -> Outcome:
    url = checked_url(endpoint_url(endpoint, request.model))
    headers = request_headers(endpoint, secret)
    pieces = encode_body(request, reference_data)
    headers["Content-Length"] = str(sum(map(len, pieces)))
    content = _Body(pieces)

    started = time.perf_counter()
    try:
        reply = await _post(http, url, headers, content, max_bytes, spool_dir)
    except (httpx.HTTPError, OSError) as exc:
        failed = transport_outcome(exc, url)
        return dataclasses.replace(failed, latency=time.perf_counter() - started)
    latency = time.perf_counter() - started
    # Redact before parsing: reasons clip messages, which could cut a key in two.
    reply = dataclasses.replace(reply, body=redact_bytes(reply.body, secret))

    outcome: Outcome | None = None
    try:
        if reply.too_large and 200 <= reply.status < 300:
            outcome = Outcome(
                Kind.UNKNOWN, f"response larger than {size_text(max_bytes)}"
            )
        elif 200 <= reply.status < 300:
            outcome = await classify_answer(
                http,
                reply.status,
                reply.headers,
                reply.body,
                reply.blobs,
                max_bytes,
                base_url=url,
            )
        else:
            outcome = classify_error(
                reply.status,
                reply.headers,
                reply.body,
                url=url,
                model=request.model,
            )
    finally:
        _drop_unused_blobs(reply.blobs, outcome)
    return dataclasses.replace(outcome, http_status=reply.status, latency=latency)


class _Body(httpx.AsyncByteStream):
    """A request body sent as the pieces `encode_body` gives (its length is in the
    headers); may be sent again if a connection drops before it went out."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            yield piece


async def _post(
    http: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    content: _Body,
    max_bytes: int,
    spool_dir: Path | None,
) -> _Reply:
    if isinstance(http, RunnerClient) and http.direct is not None:
        request = httpx.Request(
            "POST",
            url,
            content=content,
            headers=headers,
            extensions={"timeout": http.timeout.as_dict()},
        )
        opened = _closing(await http.direct.handle_async_request(request))
    else:
        opened = http.stream(
            "POST", url, content=content, headers=headers, follow_redirects=False
        )
    runner = http if isinstance(http, RunnerClient) else None
    async with opened as response:
        if response.is_success:
            declared = response.headers.get("content-length", "")
            blobs = BlobExtractor(
                spool_dir=spool_dir,
                expected=int(declared) if declared.isdigit() else None,
            )
            writers = runner.spool_writers if runner else None
            try:
                async with runner.readers if runner else contextlib.nullcontext():
                    too_large = await _stream_answer(
                        response, max_bytes, blobs, writers
                    )
            except BaseException:
                blobs.discard()
                raise
            if too_large:
                blobs.discard()
            return _Reply(
                response.status_code,
                response.headers,
                blobs.finish(),
                too_large,
                blobs,
            )
        try:
            body, too_large = await read_limited(response, _MAX_ERROR_BODY_BYTES)
        except httpx.HTTPError:
            # The status line already says what happened; the body was only detail.
            body, too_large = b"", False
        return _Reply(response.status_code, response.headers, body, too_large)


@contextlib.asynccontextmanager
async def _closing(response: httpx.Response) -> AsyncIterator[httpx.Response]:
    try:
        yield response
    finally:
        await response.aclose()


def _drop_unused_blobs(blobs: BlobExtractor | None, outcome: Outcome | None) -> None:
    """Delete spilled image files that no returned Image refers to."""
    if blobs is None:
        return
    used = {image.path for image in outcome.images} if outcome else set()
    for blob in blobs.blobs:
        if blob.path is not None and blob.path not in used:
            blob.discard()


async def _stream_answer(
    response: httpx.Response,
    limit: int,
    blobs: BlobExtractor,
    writers: anyio.CapacityLimiter | None,
) -> bool:
    """Feed the body to `blobs`, their temp files written by `writers` threads;
    True if it is longer than `limit` bytes."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return True
    seen = 0
    async for chunk in response.aiter_bytes():
        seen += len(chunk)
        if seen > limit:
            return True
        blobs.feed(chunk)
        if blobs.unwritten >= SPOOL_FLUSH_BYTES:
            await to_thread.run_sync(blobs.flush, limiter=writers)
    if blobs.needs_flush:
        await to_thread.run_sync(blobs.flush, limiter=writers)
    return False


def transport_outcome(exc: Exception, url: str) -> Outcome:
    """What an httpx or OS error while calling `url` means (SPEC section 1): not
    sent (transient), possibly billed (unknown), or no request can go (run-fatal)."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
        # Nothing reached the server: refused, DNS, TLS (httpcore maps each to
        # ConnectError) or no answer to the connect. Told apart, since while the
        # base URL has answered nothing in a run, this means a wrong URL.
        what = "connect timeout" if isinstance(exc, httpx.ConnectTimeout) else ""
        return Outcome(
            Kind.TRANSIENT,
            f"could not connect to {url} ({clip(what or detail, 100)})",
            connect_failed=True,
        )
    if isinstance(exc, httpx.PoolTimeout):
        return Outcome(Kind.TRANSIENT, "no free connection in the pool (pool timeout)")
    if isinstance(exc, httpx.ProxyError):
        return Outcome(Kind.TRANSIENT, f"could not connect: {detail}")
    if isinstance(exc, httpx.WriteTimeout | httpx.WriteError):
        return Outcome(Kind.TRANSIENT, f"request not fully sent: {detail}")
    if isinstance(exc, httpx.LocalProtocolError):
        # Raised while building or writing the request, before the server acted.
        return Outcome(Kind.TRANSIENT, f"request not sent: {detail}")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return Outcome(Kind.FATAL_RUN, f"{detail}; check the base URL")
    if isinstance(exc, httpx.ReadTimeout):
        return Outcome(
            Kind.UNKNOWN, "read timeout: no answer in time (the request may be billed)"
        )
    if isinstance(exc, httpx.RemoteProtocolError):
        if "without sending a response" in detail:
            return Outcome(
                Kind.UNKNOWN, "server disconnected without sending a response"
            )
        return Outcome(Kind.UNKNOWN, f"connection dropped mid-answer: {detail}")
    if isinstance(exc, httpx.ReadError):
        return Outcome(Kind.UNKNOWN, f"connection dropped while waiting: {detail}")
    if isinstance(exc, httpx.DecodingError):
        return Outcome(Kind.UNKNOWN, f"could not decode the answer: {detail}")
    # Anything else may have happened after the request left: assume it was billed.
    return Outcome(Kind.UNKNOWN, f"{type(exc).__name__}: {detail}")
