"""generateContent over an injected `httpx.AsyncClient`, classified into an `Outcome`.

Owns: the request body, auth headers, timeouts, reading the reply (native inlineData,
relay Markdown data URIs and https URLs), and SPEC section 1 classification. Redacts the
API key before any string leaves the module. Must not retry, sleep, write files or touch
the store.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import email.utils
import enum
import json
import re
import time
import urllib.request
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx

from runner import __version__
from runner.client.blobs import BlobExtractor

if TYPE_CHECKING:
    from pathlib import Path

    from runner.plan import Request

DEFAULT_TIMEOUT = httpx.Timeout(connect=15.0, write=60.0, read=300.0, pool=None)
# Relay image URLs point at a CDN: a short read timeout, and a pool timeout so a
# stuck fetch cannot hold an already-paid answer forever.
DEFAULT_URL_FETCH_TIMEOUT = httpx.Timeout(
    connect=15.0, write=15.0, read=60.0, pool=60.0
)
# Two 4K PNGs in base64 stay well under this; anything larger is not an answer.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# Connections beyond `concurrency`, for relay image URL fetches.
URL_FETCH_CONNECTIONS = 4
MAX_REASON_CHARS = 300

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
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


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
    data: bytes  # b"" when the bytes were spilled to `path`
    source: str = "inline"  # inline | data-uri | url
    path: Path | None = None  # a temp file in the spool folder holding the bytes

    def __repr__(self) -> str:
        # Megabytes of image bytes in a repr make every failing assert unreadable.
        where = f"path={self.path}" if self.path else f"data=<{len(self.data)} bytes>"
        return f"Image(mime_type={self.mime_type!r}, {where}, source={self.source!r})"


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

    def __post_init__(self) -> None:
        if self.auth not in ("bearer", "goog"):
            raise ValueError(f"auth must be 'bearer' or 'goog', not {self.auth!r}")


def build_body(request: Request, reference_data: Sequence[bytes]) -> dict[str, Any]:
    """The generateContent JSON body for `request` (reference bytes in order)."""
    if len(reference_data) != len(request.references):
        raise ValueError(
            f"{len(request.references)} references but {len(reference_data)} "
            "byte strings given"
        )
    parts: list[dict[str, Any]] = [{"text": request.text}]
    for ref, data in zip(request.references, reference_data, strict=True):
        parts.append(
            {
                "inline_data": {
                    "mime_type": ref.mime_type,
                    "data": base64.b64encode(data).decode("ascii"),
                }
            }
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
        "contents": [{"role": "user", "parts": parts}],
        "generationConfig": config,
    }
    if request.system_instruction:
        body["systemInstruction"] = {"parts": [{"text": request.system_instruction}]}
    if request.safety_settings:
        body["safetySettings"] = [dict(s) for s in request.safety_settings]
    return body


def endpoint_url(endpoint: Endpoint, model: str) -> str:
    """`{base_url}/v1beta/models/{model}:generateContent`, tolerant of slashes."""
    base = endpoint.base_url.rstrip("/")
    if base.endswith("/v1beta"):
        base = base[: -len("/v1beta")]
    model = model.removeprefix("models/")
    return f"{base}/v1beta/models/{model}:generateContent"


def redact(text: str, secret: str | None) -> str:
    """`text` with every occurrence of `secret` (plain or URL-encoded) masked."""
    for form in _secret_forms(secret):
        text = text.replace(form, _MASK)
    return text


def make_http_client(
    *,
    concurrency: int,
    timeout: httpx.Timeout | None = None,
    base_url: str | None = None,
) -> httpx.AsyncClient:
    """An AsyncClient sized for `concurrency` calls plus relay URL fetches.

    A proxy named in the environment (HTTP(S)_PROXY, ALL_PROXY, with NO_PROXY) is
    used, except for a `base_url` on this machine (the simulated API)."""
    size = max(1, concurrency) + URL_FETCH_CONNECTIONS
    timeout = timeout if timeout is not None else DEFAULT_TIMEOUT
    if urllib.request.getproxies() and not _is_loopback(base_url):
        # httpx honours the environment's proxies only when it builds its
        # transports itself.
        return httpx.AsyncClient(
            limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
            timeout=timeout,
            follow_redirects=False,
        )
    shards = max(1, -(-size // POOL_SHARD_SIZE))
    return _RunnerClient(_ShardedTransport(shards, -(-size // shards)), timeout)


def _is_loopback(url: str | None) -> bool:
    if not url:
        return False
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL:
        return False
    return host == "localhost" or host == "::1" or host.startswith("127.")


class _RunnerClient(httpx.AsyncClient):
    """The runner's AsyncClient when no proxy is configured. generateContent calls
    go straight to its transport, skipping the client's per-request layers (URL
    merging, auth and redirect flows, the cookie jar): about 0.25 ms of CPU a
    request, a sixth of what httpx costs here."""

    def __init__(self, transport: _ShardedTransport, timeout: httpx.Timeout) -> None:
        super().__init__(transport=transport, timeout=timeout, follow_redirects=False)
        self.direct = transport


# httpcore walks every connection of its pool on each request and response close
# (with a syscall per idle one), so CPU per request grows with the pool. Several
# small pools, each request to the least busy, keep that walk short: at
# concurrency 64 this took the benchmark from 56 to ~197 requests/s (pools of 8:
# ~165, of 4: ~197, of 2: no better).
POOL_SHARD_SIZE = 4


class _ShardedTransport(httpx.AsyncBaseTransport):
    def __init__(self, shards: int, per_shard: int) -> None:
        limits = httpx.Limits(
            max_connections=per_shard,
            max_keepalive_connections=per_shard,
            keepalive_expiry=30,
        )
        # One TLS context for all pools: building one (CA certificates loaded)
        # costs ~30 ms of CPU, and each pool would otherwise build its own.
        tls = httpx.create_ssl_context()
        self._pools = [
            httpx.AsyncHTTPTransport(limits=limits, verify=tls) for _ in range(shards)
        ]
        self._busy = [0] * shards

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        shard = min(range(len(self._pools)), key=self._busy.__getitem__)
        self._busy[shard] += 1
        try:
            response = await self._pools[shard].handle_async_request(request)
        except BaseException:
            self._busy[shard] -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Released(response.stream, self, shard)
        return response

    def release(self, shard: int) -> None:
        self._busy[shard] -= 1

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


class _Released(httpx.AsyncByteStream):
    """A response body that gives its shard back once when it is closed."""

    def __init__(
        self, stream: httpx.AsyncByteStream, owner: _ShardedTransport, shard: int
    ) -> None:
        self._stream = stream
        self._owner: _ShardedTransport | None = owner
        self._shard = shard

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        if self._owner is not None:
            self._owner.release(self._shard)
            self._owner = None
        await self._stream.aclose()


async def generate(
    http: httpx.AsyncClient,
    endpoint: Endpoint,
    request: Request,
    reference_data: Sequence[bytes],
    *,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    spool_dir: Path | None = None,
) -> Outcome:
    """Send one generateContent call and classify the reply; never raises on I/O.

    Image data is decoded while the answer streams in; with `spool_dir`, images
    past a megabyte go to hidden temp files there (`Image.path`), which the caller
    renames into place. Files of answers that are not a success are deleted.
    """
    secret = (endpoint.api_key or "").strip() or None
    try:
        return _seal(
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
    except _Refused as refused:
        return _seal(refused.outcome, secret)


# --- sending -----------------------------------------------------------------


class _Refused(Exception):
    """A request that cannot be sent at all; carries the outcome to report."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    headers: httpx.Headers
    body: bytes  # for a success: the document with image data taken out
    too_large: bool
    blobs: BlobExtractor | None = None


# Error bodies are only read for a reason; no need to hold a large one.
_MAX_ERROR_BODY_BYTES = 64 * 1024


async def _generate(
    http: httpx.AsyncClient,
    endpoint: Endpoint,
    secret: str | None,
    request: Request,
    reference_data: Sequence[bytes],
    max_bytes: int,
    spool_dir: Path | None,
) -> Outcome:
    url = _checked_url(endpoint_url(endpoint, request.model))
    headers = _headers(endpoint, secret)
    content = json.dumps(
        build_body(request, reference_data), ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8")

    started = time.perf_counter()
    try:
        reply = await _post(http, url, headers, content, max_bytes, spool_dir)
    except (httpx.HTTPError, OSError) as exc:
        failed = _transport_outcome(exc)
        return dataclasses.replace(failed, latency=time.perf_counter() - started)
    latency = time.perf_counter() - started
    # Redact before parsing: reasons clip messages, which could cut a key in two.
    reply = dataclasses.replace(reply, body=_redact_bytes(reply.body, secret))

    outcome: Outcome | None = None
    try:
        if reply.too_large and 200 <= reply.status < 300:
            outcome = Outcome(Kind.UNKNOWN, f"response larger than {_size(max_bytes)}")
        elif 200 <= reply.status < 300:
            outcome = await _classify_answer(http, reply, max_bytes)
        else:
            outcome = _classify_error(reply.status, reply.headers, reply.body)
    finally:
        _drop_unused_blobs(reply.blobs, outcome)
    return dataclasses.replace(outcome, http_status=reply.status, latency=latency)


def _checked_url(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise _Refused(
            Outcome(Kind.FATAL_RUN, f"invalid base URL ({exc}); check the base URL")
        ) from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise _Refused(
            Outcome(
                Kind.FATAL_RUN,
                f"the base URL must be an http(s) URL with a host, not {url!r}",
            )
        )
    return url


def _headers(endpoint: Endpoint, secret: str | None) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": f"runner/{__version__}",
    }
    if secret is None:
        return headers
    if not all(" " < ch < "\x7f" for ch in secret):
        # httpx would raise on it anyway; every request would fail the same way.
        raise _Refused(
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


async def _post(
    http: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    content: bytes,
    max_bytes: int,
    spool_dir: Path | None,
) -> _Reply:
    if isinstance(http, _RunnerClient):
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
    async with opened as response:
        if response.is_success:
            blobs = BlobExtractor(spool_dir=spool_dir)
            try:
                too_large = await _stream_answer(response, max_bytes, blobs)
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
            body, too_large = await _read_limited(response, _MAX_ERROR_BODY_BYTES)
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
    response: httpx.Response, limit: int, blobs: BlobExtractor
) -> bool:
    """Feed the body to `blobs`; True if it is longer than `limit` bytes."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return True
    seen = 0
    async for chunk in response.aiter_bytes():
        seen += len(chunk)
        if seen > limit:
            return True
        blobs.feed(chunk)
    return False


async def _read_limited(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` decoded bytes, and whether the body was longer than that."""
    declared = response.headers.get("content-length", "")
    # A compressed body's length says nothing about its decoded size.
    encoded = "content-encoding" in response.headers
    if declared.isdigit() and int(declared) > limit and not encoded:
        return b"", True
    buffer = bytearray()
    async for chunk in response.aiter_bytes():
        buffer += chunk
        if len(buffer) > limit:
            return bytes(buffer[:limit]), True
    return bytes(buffer), False


def _transport_outcome(exc: Exception) -> Outcome:
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return Outcome(Kind.TRANSIENT, f"connect timeout: {detail}")
    if isinstance(exc, httpx.PoolTimeout):
        return Outcome(Kind.TRANSIENT, "no free connection in the pool (pool timeout)")
    if isinstance(exc, httpx.ConnectError | httpx.ProxyError):
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


# --- error answers -------------------------------------------------------------

_BALANCE_MARKERS = (
    "insufficient_user_quota",
    "insufficient_quota",
    "insufficient_balance",
    "insufficient balance",
    "quota is not enough",
    "balance is not enough",
    "out of balance",
    "余额不足",
    "额度不足",
)


@dataclass(frozen=True, slots=True)
class _ApiError:
    label: str  # Google `status`, else relay `code` or `type`; may be ""
    message: str
    details: tuple[Mapping[str, Any], ...]
    raw: str  # the body as text, for non-JSON error pages

    def summary(self, status: int) -> str:
        if self.label or self.message:
            head = f"{status} {self.label}".rstrip()
            return f"{head}: {_clip(self.message, 200)}" if self.message else head
        raw = _clip(_strip_html(self.raw), 200)
        return f"HTTP {status}: {raw}" if raw else f"HTTP {status}"

    def mentions_balance(self) -> bool:
        haystack = " ".join((self.label, self.message, self.raw)).lower()
        return any(marker in haystack for marker in _BALANCE_MARKERS)


def _classify_error(status: int, headers: httpx.Headers, body: bytes) -> Outcome:
    error = _parse_error(body)
    summary = error.summary(status)
    if 400 <= status < 500 and (status == 402 or error.mentions_balance()):
        return Outcome(
            Kind.FATAL_RUN,
            f"the account is out of balance or quota ({summary}); top it up, then "
            "resume with `runner submit`",
        )
    if status == 401:
        return Outcome(
            Kind.FATAL_RUN,
            f"the API rejected the key ({summary}); check the key and base URL",
        )
    if status == 403:
        return Outcome(
            Kind.FATAL_RUN,
            f"the API refused access ({summary}); check the key, its permissions "
            "and the base URL",
        )
    if status == 429 and (quota := _daily_quota(error.details)):
        return Outcome(
            Kind.FATAL_RUN,
            f"daily quota {quota} is used up ({summary}); the run resumes with "
            "`runner submit` once it resets",
        )
    if status in TRANSIENT_STATUSES or 500 <= status < 600:
        return Outcome(
            Kind.TRANSIENT,
            summary,
            retry_after=_max_or_none(
                _retry_after_header(headers.get("retry-after")),
                _retry_delay(error.details),
            ),
        )
    if 400 <= status < 500:
        return Outcome(Kind.FATAL_ITEM, summary)
    if 300 <= status < 400:
        # A redirected POST is never replayed; the base URL is wrong for every item.
        where = headers.get("location", "")
        return Outcome(
            Kind.FATAL_RUN,
            f"HTTP {status} redirect{f' to {where}' if where else ''}; set the base "
            "URL to the final address",
        )
    return Outcome(Kind.UNKNOWN, f"unexpected {summary}")


def _parse_error(body: bytes) -> _ApiError:
    raw = body.decode("utf-8", errors="replace")
    try:
        data: Any = json.loads(raw)
    except ValueError:
        return _ApiError("", "", (), raw)
    if isinstance(data, list) and data:
        data = data[0]  # Google wraps errors in a list on some endpoints
    if not isinstance(data, dict):
        return _ApiError("", "", (), raw)
    error: Any = data.get("error", data)
    if isinstance(error, str):
        return _ApiError("", error, (), raw)
    if not isinstance(error, dict):
        return _ApiError("", "", (), raw)
    label = error.get("status") or error.get("code") or error.get("type") or ""
    message = error.get("message") or error.get("detail") or error.get("msg") or ""
    details = error.get("details")
    return _ApiError(
        label=label if isinstance(label, str) else "",
        message=message if isinstance(message, str) else json.dumps(message),
        details=tuple(d for d in details if isinstance(d, dict))
        if isinstance(details, list)
        else (),
        raw=raw,
    )


def _daily_quota(details: Sequence[Mapping[str, Any]]) -> str | None:
    for detail in details:
        if not str(detail.get("@type", "")).endswith("QuotaFailure"):
            continue
        violations = detail.get("violations")
        for violation in violations if isinstance(violations, list) else ():
            quota_id = violation.get("quotaId") if isinstance(violation, dict) else None
            if isinstance(quota_id, str) and "PerDay" in quota_id:
                return quota_id
    return None


def _retry_delay(details: Sequence[Mapping[str, Any]]) -> float | None:
    for detail in details:
        if str(detail.get("@type", "")).endswith("RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, int | float):
                return max(0.0, float(delay))
            if isinstance(delay, str):
                try:
                    return max(0.0, float(delay.strip().removesuffix("s")))
                except ValueError:
                    return None
    return None


def _retry_after_header(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _max_or_none(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


# --- 2xx answers ---------------------------------------------------------------

_DATA_URI = re.compile(r"data:(image/[\w.+-]+);base64,([^)\s\"'<>\]]*)", re.IGNORECASE)
_MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?(https?://[^)\s>]+)>?[^)]*\)")
_BARE_URL = re.compile(r"https?://[^\s)\]\"'<>]+")
_MAX_TEXT_CHARS = 4096  # of each text part, kept for reasons (clipped far shorter)
_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".avif", ".heic")


class _BadAnswer(Exception):
    """An answer that was paid for but cannot be used (invalid image data)."""


async def _classify_answer(
    http: httpx.AsyncClient, reply: _Reply, max_bytes: int
) -> Outcome:
    try:
        data: Any = json.loads(reply.body)
    except ValueError:
        shown = _clip(reply.body.decode("utf-8", errors="replace"), 100)
        return Outcome(
            Kind.UNKNOWN,
            f"{reply.status} answer is not valid JSON (truncated?): {shown!r}",
        )
    if not isinstance(data, dict):
        return Outcome(Kind.UNKNOWN, f"{reply.status} answer is not a JSON object")
    if "error" in data and "candidates" not in data:
        # Some relays send errors with status 200; trust the code inside.
        code = data["error"].get("code") if isinstance(data["error"], dict) else None
        if isinstance(code, int) and 400 <= code < 600:
            return _classify_error(code, reply.headers, reply.body)
        error = _parse_error(reply.body)
        if error.mentions_balance():
            return _classify_error(402, reply.headers, reply.body)
        return Outcome(Kind.UNKNOWN, f"answer carried an error: {error.summary(200)}")

    usage = data.get("usageMetadata")
    meta = Outcome(
        Kind.UNKNOWN,
        "",
        usage=dict(usage) if isinstance(usage, dict) else None,
        model_version=_str_or_none(data.get("modelVersion")),
        response_id=_str_or_none(data.get("responseId")),
    )

    feedback = data.get("promptFeedback")
    if not isinstance(feedback, dict):
        feedback = {}
    if block := feedback.get("blockReason"):
        detail = feedback.get("blockReasonMessage")
        reason = f"prompt blocked: {block}"
        if isinstance(detail, str) and detail:
            reason += f": {_clip(detail, 120)}"
        return dataclasses.replace(
            meta, kind=Kind.BLOCKED, reason=reason, finish_reason=str(block)
        )

    candidates = data.get("candidates")
    if not isinstance(candidates, list):
        candidates = []
    candidates = [c for c in candidates if isinstance(c, dict)]
    finish = _str_or_none(candidates[0].get("finishReason")) if candidates else None
    finish_message = (
        _str_or_none(candidates[0].get("finishMessage")) if candidates else None
    )
    meta = dataclasses.replace(meta, finish_reason=finish)

    try:
        images, texts, urls, empty = _collect(candidates, reply.blobs)
    except _BadAnswer as exc:
        return dataclasses.replace(meta, reason=str(exc))
    text = "\n".join(texts)
    meta = dataclasses.replace(meta, text=text)

    fetched: list[Image] = []
    for url in urls:
        got = await _fetch_image(http, url, max_bytes)
        if isinstance(got, str):
            return dataclasses.replace(
                meta,
                reason=f"could not fetch the image URL {_clip(url, 120)}: {got}",
                extra_urls=tuple(urls),
            )
        fetched.append(got)
    images += fetched

    if images:
        return dataclasses.replace(
            meta, kind=Kind.SUCCESS, images=tuple(images), extra_urls=tuple(urls)
        )
    if finish in BLOCKED_FINISH_REASONS:
        reason = f"finishReason {finish}"
        if finish_message:
            reason += f": {_clip(finish_message, 120)}"
        return dataclasses.replace(meta, kind=Kind.BLOCKED, reason=reason)
    if not candidates:
        reason = "no candidates"
    elif finish not in (None, "STOP"):
        reason = f"finishReason {finish}"
        if text or finish_message:
            reason += f": {_clip(text or finish_message or '', 120)}"
    elif text:
        reason = f"answered with text only: {_clip(text, 120)}"
    elif empty:
        reason = "answered with empty image data"
    else:
        reason = f"empty answer (finishReason {finish or 'missing'})"
    return dataclasses.replace(meta, kind=Kind.NO_IMAGE, reason=reason)


def _collect(
    candidates: Sequence[Mapping[str, Any]], blobs: BlobExtractor | None = None
) -> tuple[list[Image], list[str], list[str], int]:
    """Images, non-thought texts (data URIs elided), image URLs, empty images."""
    images: list[Image] = []
    texts: list[str] = []
    urls: list[str] = []
    empty = 0
    for candidate in candidates:
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else ():
            if not isinstance(part, dict) or part.get("thought") is True:
                continue
            inline = part.get("inlineData", part.get("inline_data"))
            if isinstance(inline, dict):
                payload = inline.get("data")
                mime = inline.get("mimeType", inline.get("mime_type"))
                if not payload:
                    empty += 1
                    continue
                mime = mime if isinstance(mime, str) else ""
                blob = blobs.blob_for(payload) if blobs is not None else None
                if blob is None:
                    images.append(Image(mime, _b64(payload, "inlineData")))
                elif blob.error is not None:
                    raise _BadAnswer(f"{blob.error} in inlineData")
                elif blob.size == 0:
                    empty += 1
                else:
                    images.append(Image(mime, bytes(blob.data), path=blob.path))
            file_data = part.get("fileData", part.get("file_data"))
            if isinstance(file_data, dict):
                uri = file_data.get("fileUri", file_data.get("file_uri"))
                if isinstance(uri, str) and uri.startswith(("http://", "https://")):
                    _add_url(urls, uri)
            text = part.get("text")
            if isinstance(text, str) and text:
                # Cheap substring checks first: a relay may answer with megabytes
                # of text, and each regex pass over it costs time and a copy.
                if "ase64," in text or "ASE64," in text:
                    for match in _DATA_URI.finditer(text):
                        data = _b64(match.group(2), "data URI")
                        if data:
                            mime = match.group(1).lower()
                            images.append(Image(mime, data, "data-uri"))
                        else:
                            empty += 1
                    text = _DATA_URI.sub(r"data:\1;base64,…", text)
                if "http" in text:
                    for url in _image_urls(_DATA_URI.sub("", text)):
                        _add_url(urls, url)
                # Text only ever ends up in a clipped reason.
                texts.append(text[:_MAX_TEXT_CHARS])
    return images, texts, urls, empty


def _b64(payload: Any, where: str) -> bytes:
    if not isinstance(payload, str):
        raise _BadAnswer(f"{where} image data is not a base64 string")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _BadAnswer(f"invalid base64 image data in {where} ({exc})") from exc


def _image_urls(text: str) -> list[str]:
    """Markdown image links always; other links only if the path names an image."""
    found = [m.group(1) for m in _MARKDOWN_IMAGE.finditer(text)]
    for match in _BARE_URL.finditer(_MARKDOWN_IMAGE.sub("", text)):
        url = match.group(0).rstrip(".,;:!?")
        if urlsplit(url).path.lower().endswith(_IMAGE_EXTENSIONS):
            found.append(url)
    return found


def _add_url(urls: list[str], url: str) -> None:
    if url not in urls:
        urls.append(url)


async def _fetch_image(
    http: httpx.AsyncClient, url: str, max_bytes: int
) -> Image | str:
    """The image at a relay URL, or why it could not be had. No auth header: the
    URL usually points at a CDN that must not see the key."""
    try:
        async with http.stream(
            "GET",
            url,
            headers={"User-Agent": f"runner/{__version__}"},
            follow_redirects=True,
            timeout=DEFAULT_URL_FETCH_TIMEOUT,
        ) as response:
            if not response.is_success:
                return f"HTTP {response.status_code}"
            body, too_large = await _read_limited(response, max_bytes)
            mime = response.headers.get("content-type", "").split(";")[0].strip()
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        return str(exc) or type(exc).__name__
    if too_large:
        return f"larger than {_size(max_bytes)}"
    if not body:
        return "empty body"
    if mime.startswith("text/") or mime in ("application/json", "application/xml"):
        return f"not an image ({mime})"
    return Image(mime.lower(), body, "url")


# --- shared helpers ------------------------------------------------------------


def _seal(outcome: Outcome, secret: str | None) -> Outcome:
    """The single choke point every outcome passes: redact, then shorten."""
    return dataclasses.replace(
        outcome,
        reason=_clip(redact(outcome.reason, secret), MAX_REASON_CHARS),
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
    )


_MASK = "[REDACTED]"


def _secret_forms(secret: str | None) -> set[str]:
    """The key as it may come back: plain, URL-encoded, or with JSON-escaped '/'."""
    if not secret:
        return set()
    return {secret, quote(secret, safe=""), secret.replace("/", "\\/")}


def _redact_bytes(data: bytes, secret: str | None) -> bytes:
    # A very short "key" would match inside base64 image data (a data URI in a
    # text part) and corrupt it; the final strings are still redacted by _seal.
    if secret is None or len(secret) < _MIN_BYTE_REDACT:
        return data
    for form in _secret_forms(secret):
        encoded = form.encode("utf-8")
        if encoded in data:
            data = data.replace(encoded, _MASK.encode("ascii"))
    return data


_MIN_BYTE_REDACT = 8


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


def _clip(text: str, limit: int) -> str:
    text = " ".join(text[: limit * 8].split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _strip_html(text: str) -> str:
    if not text.lstrip().startswith("<"):
        return text
    text = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", text)
    return re.sub(r"<[^>]+>", " ", text)


def _size(n: int) -> str:
    mib = n / (1024 * 1024)
    return f"{mib:g} MiB" if mib >= 1 else f"{n} bytes"


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
