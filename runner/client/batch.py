"""The Batch API and the Files API on the wire (SPEC 7): the probe, create, get,
list and cancel calls, the resumable upload of a JSONL input and its deletion once
used, and a batch's results
read as they stream in, each classified exactly like a generateContent answer.

Wire shapes, as google-genai writes and reads them (googleapis/python-genai,
google/genai/batches.py): create is `POST /v1beta/models/{model}:batchGenerateContent`
with `{"batch": {"displayName", "inputConfig": {"requests": {"requests": [{"request",
"metadata"}]}} or {"fileName"}}}` (_CreateBatchJobParameters_to_mldev,
_BatchJobSource_to_mldev, _InlinedRequest_to_mldev); a batch comes back as a
long-running operation whose `metadata` holds `displayName`, `state` (BATCH_STATE_*,
which the SDK renames JOB_STATE_*: _transformers.py t_job_state), `batchStats` and
`output` (`responsesFile`, or `inlinedResponses.inlinedResponses`, each `response`
or `error` with the request's `metadata`: _BatchJob_from_mldev,
_BatchJobDestination_from_mldev, _InlinedResponse_from_mldev), and once done the
same output again in `response`; `GET /v1beta/batches` pages `operations` with
`nextPageToken` (_ListBatchJobsResponse_from_mldev). A JSONL input line is `{"key",
"request"}` where the request is the very GenerateContentRequest an interactive
call sends (settings in its `generationConfig`; ai.google.dev/gemini-api/docs/
batch-mode, "Input file"), and a result line `{"key", "response"}` or `{"key",
"error"}` with a google.rpc.Status.
Must not retry, sleep, decide what a result means for its item, or write files
other than spooled image data.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

import anyio
import httpx

from runner.client.answer import classify_answer
from runner.client.api_errors import classify_error
from runner.client.blobs import BlobExtractor
from runner.client.call import (
    DEFAULT_MAX_RESPONSE_BYTES,
    SPOOL_FLUSH_BYTES,
    transport_outcome,
)
from runner.client.outcome import Kind, Outcome, clip
from runner.client.redaction import redact_bytes, seal
from runner.client.request import Refused, checked_url, request_headers
from runner.client.transport import read_limited

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping
    from pathlib import Path

    from runner.client.request import Endpoint

SUCCEEDED = "BATCH_STATE_SUCCEEDED"
TERMINAL_STATES = frozenset(
    {SUCCEEDED, "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED"}
)
# Inline requests suit batches "under 20MB" in all (ai.google.dev/gemini-api/docs/
# batch-mode); past that, a JSONL file through the Files API, which takes files of
# up to 2 GB (ai.google.dev/gemini-api/docs/files).
INLINE_LIMIT_BYTES = 20_000_000
FILE_LIMIT_BYTES = 2 * 1024**3
# google-genai uploads in chunks of 8 MB (_api_client.py CHUNK_SIZE).
UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024
JSONL_MIME_TYPE = "application/jsonl"
# Batches asked for per page when looking one up by name: a listed batch may carry
# its inline results, so pages are kept small.
LIST_PAGE_SIZE = 20
MAX_LIST_PAGES = 500
# Image data of results is spooled to disk past this (an interactive answer's past
# a megabyte): a batch brings many answers at once.
RESULT_SPILL_BYTES = 64 * 1024
# What a batch's error or operation body may keep once image data is taken out.
_MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
_MAX_ERROR_BODY_BYTES = 64 * 1024


class BatchCallFailed(Exception):
    """A Batch or Files API call got no usable answer; `outcome` says why, as SPEC
    section 1 classifies it (transient, unknown: possibly done, run-fatal...)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


class NoBatchApi(BatchCallFailed):
    """The endpoint answered 404 to `GET /v1beta/batches`: no Batch API there (a
    relay that passes only generateContent on)."""


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One request's result: its GenerateContentResponse (image data taken out into
    `blobs`) or its google.rpc.Status error, with the key it came back with."""

    key: str | None  # the echoed metadata key or line key; None: match by position
    response: bytes | None
    error: Mapping[str, Any] | None
    blobs: BlobExtractor | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class BatchInfo:
    """A batch as the API last described it."""

    name: str  # batches/...
    display_name: str
    state: str  # BATCH_STATE_*; JOB_STATE_* is read as the same state
    requests: int | None = None
    succeeded: int | None = None
    failed: int | None = None
    pending: int | None = None
    result_file: str | None = None  # files/... of a file batch's results
    error: str = ""  # why a batch ended without results, when the API says
    results: tuple[BatchResult, ...] = ()  # an inline batch's, once done

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def stats(self) -> dict[str, int | None]:
        """batchStats under the store's names."""
        return {
            "requests": self.requests,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "pending": self.pending,
        }


def request_line(key: str, body: Mapping[str, Any]) -> bytes:
    """One JSONL input line: `{"key": KEY, "request": BODY}` and a newline."""
    return b'{"key":' + _dumps(key) + b',"request":' + _dumps(body) + b"}\n"


def inline_request(line: bytes) -> bytes:
    """The inline form of a `request_line`: `{"metadata": {"key": KEY}, "request":
    BODY}` (an InlinedRequest; its metadata comes back with the response)."""
    key_end = line.index(b',"request":')
    key = line[len(b'{"key":') : key_end]
    return b'{"metadata":{"key":' + key + b"}," + line[key_end + 1 :].rstrip(b"\n")


async def probe(
    http: httpx.AsyncClient, endpoint: Endpoint, *, spool_dir: Path | None = None
) -> None:
    """Whether the endpoint serves the Batch API: `GET /v1beta/batches` (one
    batch); NoBatchApi on a 404, BatchCallFailed on any other failure."""
    url = _url(endpoint, "v1beta/batches") + "?pageSize=1"
    try:
        async with _Call(http, endpoint, "GET", url, spool_dir=spool_dir) as call:
            await call.document()
    except BatchCallFailed as failed:
        if failed.outcome.http_status == 404:
            raise NoBatchApi(
                replace(
                    failed.outcome,
                    kind=Kind.FATAL_RUN,
                    reason=f"{endpoint.base_url} has no Batch API (GET /v1beta/"
                    "batches answered 404); submit without --batch, or use an "
                    "endpoint that serves batches (Google's own)",
                )
            ) from None
        raise


async def find_batch(
    http: httpx.AsyncClient,
    endpoint: Endpoint,
    display_name: str,
    *,
    spool_dir: Path | None = None,
) -> BatchInfo | None:
    """The batch created with this display name, if the API lists one (newest
    first, page by page); its results are not read (image data of listed results
    goes through `spool_dir` and is deleted)."""
    token = ""
    for _ in range(MAX_LIST_PAGES):
        url = _url(endpoint, "v1beta/batches") + f"?pageSize={LIST_PAGE_SIZE}"
        if token:
            url += f"&pageToken={quote(token, safe='')}"
        async with _Call(http, endpoint, "GET", url, spool_dir=spool_dir) as call:
            doc = await call.document()
        listed = doc.get("operations", doc.get("batches"))
        for operation in listed if isinstance(listed, list) else []:
            if isinstance(operation, dict):
                info = batch_info(operation)
                if info.display_name == display_name:
                    return info
        token = doc.get("nextPageToken") or ""
        if not isinstance(token, str) or not token:
            return None
    return None


async def create_batch(
    http: httpx.AsyncClient,
    endpoint: Endpoint,
    model: str,
    display_name: str,
    *,
    requests_file: Path | None = None,
    file_name: str | None = None,
) -> BatchInfo:
    """Create a batch of the requests in `requests_file` (JSONL `request_line`s,
    sent inline, streamed from the file) or in the uploaded `file_name`.

    Not idempotent: a BatchCallFailed whose outcome is UNKNOWN may have created it
    (find it by its display name before creating another)."""
    head = b'{"batch":{"displayName":' + _dumps(display_name) + b',"inputConfig":'
    if file_name is not None:
        content = head + b'{"fileName":' + _dumps(file_name) + b"}}}"
    else:
        assert requests_file is not None
        content = await anyio.to_thread.run_sync(
            _inline_body, head + b'{"requests":{"requests":[', requests_file
        )
    path = f"v1beta/models/{model.removeprefix('models/')}:batchGenerateContent"
    async with _Call(http, endpoint, "POST", _url(endpoint, path), content) as call:
        return batch_info(await call.document())


async def get_batch(
    http: httpx.AsyncClient,
    endpoint: Endpoint,
    name: str,
    *,
    spool_dir: Path | None = None,
) -> BatchInfo:
    """The batch called `name`; once an inline batch is done, with its results
    (image data decoded as the body streams in, spooled to `spool_dir`)."""
    async with _Call(
        http, endpoint, "GET", _url(endpoint, f"v1beta/{name}"), spool_dir=spool_dir
    ) as call:
        doc = await call.document(keep=True)
        info = batch_info(doc)
        if not info.terminal:
            call.blobs.discard()
            return info
        return replace(info, results=_inline_results(doc, call.blobs))


async def cancel_batch(http: httpx.AsyncClient, endpoint: Endpoint, name: str) -> None:
    """Ask the API to cancel the batch (`POST /v1beta/{name}:cancel`)."""
    url = _url(endpoint, f"v1beta/{name}:cancel")
    async with _Call(http, endpoint, "POST", url, b"{}") as call:
        await call.document()


async def delete_file(http: httpx.AsyncClient, endpoint: Endpoint, name: str) -> None:
    """Delete an uploaded file (`DELETE /v1beta/{name=files/*}`, an empty body
    both ways: ai.google.dev/api/files#method:-files.delete). Files are deleted
    48 hours after their upload anyway (ai.google.dev/gemini-api/docs/files)."""
    async with _Call(
        http, endpoint, "DELETE", _url(endpoint, f"v1beta/{name}")
    ) as call:
        await call.document(empty_ok=True)


async def upload_file(
    http: httpx.AsyncClient, endpoint: Endpoint, path: Path, display_name: str
) -> str:
    """Upload a JSONL file through the Files API's resumable protocol, chunk by
    chunk from disk; the file's name (files/...).

    As google-genai does it (files.py upload, _extra_utils.py
    prepare_resumable_upload, _api_client.py _upload_fd): a start request with
    X-Goog-Upload-Protocol: resumable and the size and type, answered with an
    X-Goog-Upload-URL; then chunks with X-Goog-Upload-Command "upload" (the last
    "upload, finalize") at X-Goog-Upload-Offset, until the status is "final"."""
    size = (await anyio.Path(path).stat()).st_size
    start = {
        "X-Goog-Upload-Protocol": "resumable",
        "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Length": str(size),
        "X-Goog-Upload-Header-Content-Type": JSONL_MIME_TYPE,
    }
    body = _dumps({"file": {"displayName": display_name}})
    url = _url(endpoint, "upload/v1beta/files")
    async with _Call(http, endpoint, "POST", url, body, headers=start) as call:
        await call.document(empty_ok=True)
        upload_url = call.headers.get("x-goog-upload-url", "")
    if not upload_url:
        raise BatchCallFailed(
            Outcome(Kind.FATAL_RUN, f"{url} answered no X-Goog-Upload-URL")
        )
    upload_url = _same_host(upload_url, endpoint.base_url)
    offset = 0
    async with await anyio.open_file(path, "rb") as source:
        while True:
            chunk = await source.read(UPLOAD_CHUNK_BYTES)
            last = offset + len(chunk) >= size
            command = {
                "X-Goog-Upload-Command": "upload, finalize" if last else "upload",
                "X-Goog-Upload-Offset": str(offset),
            }
            async with _Call(
                http, endpoint, "POST", upload_url, chunk, headers=command
            ) as call:
                doc = await call.document(empty_ok=True)
                status = call.headers.get("x-goog-upload-status", "")
            offset += len(chunk)
            if last or status != "active":
                break
    described = doc.get("file")
    name = described.get("name") if isinstance(described, dict) else None
    if status != "final" or not isinstance(name, str):
        raise BatchCallFailed(
            Outcome(
                Kind.TRANSIENT,
                f"the upload of {path.name} did not finish (status {status!r})",
            )
        )
    return name


@contextlib.asynccontextmanager
async def file_results(
    http: httpx.AsyncClient,
    endpoint: Endpoint,
    file_name: str,
    *,
    spool_dir: Path | None = None,
) -> AsyncIterator[AsyncIterator[BatchResult]]:
    """The lines of a batch's result file as they stream in (`GET
    /download/v1beta/{file}:download?alt=media`), one BatchResult each, never the
    whole file in memory: each line's image data is decoded while it arrives."""
    url = _url(endpoint, f"download/v1beta/{file_name}:download") + "?alt=media"
    async with _Call(http, endpoint, "GET", url, spool_dir=spool_dir) as call:
        yield call.lines()


async def result_outcome(
    http: httpx.AsyncClient,
    endpoint: Endpoint,
    result: BatchResult,
    *,
    model: str,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> Outcome:
    """What one result means, exactly as SPEC section 1 classifies an answer: a
    response like a 200 answer, an error like the HTTP error its code maps to."""
    secret = (endpoint.api_key or "").strip() or None
    if result.response is not None:
        outcome = await classify_answer(
            http,
            200,
            httpx.Headers(),
            redact_bytes(result.response, secret),
            result.blobs,
            max_response_bytes,
            base_url=endpoint.base_url,
        )
        outcome = replace(outcome, http_status=200)
    elif result.error is not None:
        outcome = _error_outcome(result.error, model)
    else:
        outcome = Outcome(
            Kind.UNKNOWN, "the batch result has neither response nor error"
        )
    return seal(outcome, secret)


def batch_info(doc: Mapping[str, Any]) -> BatchInfo:
    """A batch from an operation (its `metadata`, `response`, `error`) or from the
    bare GenerateContentBatch some answers hold."""
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        meta = doc
    state = str(meta.get("state") or doc.get("state") or "BATCH_STATE_UNSPECIFIED")
    if state.startswith("JOB_STATE_"):  # the SDK's spelling of the same states
        state = "BATCH_STATE_" + state.removeprefix("JOB_STATE_")
    stats = meta.get("batchStats")
    stats = stats if isinstance(stats, dict) else {}
    output = _output(doc)
    error = doc.get("error")
    result_file = output.get("responsesFile")
    display = meta.get("displayName")
    return BatchInfo(
        name=str(doc.get("name") or meta.get("name") or ""),
        display_name=display if isinstance(display, str) else "",
        state=state,
        # int64 counts come as strings; proto3 JSON leaves zero counts out
        requests=_count(stats, "requestCount"),
        succeeded=_count(stats, "successfulRequestCount", bool(stats)),
        failed=_count(stats, "failedRequestCount", bool(stats)),
        pending=_count(stats, "pendingRequestCount", bool(stats)),
        result_file=result_file if isinstance(result_file, str) else None,
        error=clip(str(error.get("message", "")), 200)
        if isinstance(error, dict)
        else "",
    )


# -- helpers ----------------------------------------------------------------------


class _Call:
    """One HTTP call, its answer streamed through a BlobExtractor (so a batch's
    inline results never sit whole in memory); an error answer raises
    BatchCallFailed, classified as SPEC section 1 says."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        endpoint: Endpoint,
        method: str,
        url: str,
        content: bytes | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        spool_dir: Path | None = None,
    ) -> None:
        self._http = http
        self._endpoint = endpoint
        self._method = method
        self._url = url
        self._content = content
        self._extra = dict(headers or {})
        self._secret = (endpoint.api_key or "").strip() or None
        self._stack = contextlib.AsyncExitStack()
        self._response: httpx.Response | None = None
        self._spool_dir = spool_dir
        self.blobs = self._new_blobs()
        self.headers = httpx.Headers()

    async def __aenter__(self) -> _Call:
        try:
            headers = {
                **request_headers(self._endpoint, self._secret),
                **self._extra,
            }
            checked_url(self._url)
            response = await self._stack.enter_async_context(
                self._http.stream(
                    self._method,
                    self._url,
                    content=self._content,
                    headers=headers,
                    follow_redirects=False,
                )
            )
        except Refused as refused:
            raise BatchCallFailed(seal(refused.outcome, self._secret)) from None
        except (httpx.HTTPError, OSError) as exc:
            await self._stack.aclose()
            outcome = transport_outcome(exc, self._url)
            raise BatchCallFailed(seal(outcome, self._secret)) from None
        self.headers = response.headers
        if not response.is_success:
            try:
                body, _ = await read_limited(response, _MAX_ERROR_BODY_BYTES)
            except httpx.HTTPError:
                body = b""
            await self._stack.aclose()
            outcome = classify_error(
                response.status_code,
                response.headers,
                redact_bytes(body, self._secret),
                url=self._url,
            )
            outcome = replace(outcome, http_status=response.status_code)
            raise BatchCallFailed(seal(outcome, self._secret))
        self._response = response
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    async def document(
        self, *, empty_ok: bool = False, keep: bool = False
    ) -> dict[str, Any]:
        """The answer's JSON object; image data is taken out into `blobs`, and
        kept there only with `keep` (else deleted at once)."""
        assert self._response is not None
        seen = 0
        try:
            async for chunk in self._response.aiter_bytes():
                seen += len(chunk)
                self.blobs.feed(chunk)
                # An inline batch's results are every image at once: write what
                # spilled as it comes (in a thread, as an interactive answer's),
                # not all of it at `finish`.
                if self.blobs.unwritten >= SPOOL_FLUSH_BYTES:
                    await anyio.to_thread.run_sync(self.blobs.flush)
        except (httpx.HTTPError, OSError) as exc:
            self.blobs.discard()
            outcome = transport_outcome(exc, self._url)
            raise BatchCallFailed(seal(outcome, self._secret)) from None
        kept = redact_bytes(self.blobs.finish(), self._secret)
        if not keep:
            self.blobs.discard()
        if empty_ok and not kept.strip():
            return {}
        try:
            if len(kept) > _MAX_DOCUMENT_BYTES:
                raise ValueError("too large")
            doc = json.loads(kept)
        except ValueError:
            self.blobs.discard()
            shown = clip(kept[:200].decode("utf-8", errors="replace"), 100)
            raise BatchCallFailed(
                seal(
                    Outcome(
                        Kind.UNKNOWN,
                        f"{self._url} answered {seen} bytes that are not a JSON "
                        f"object: {shown!r}",
                        http_status=self._response.status_code,
                    ),
                    self._secret,
                )
            ) from None
        if not isinstance(doc, dict):
            raise BatchCallFailed(
                Outcome(Kind.UNKNOWN, f"{self._url} answered no JSON object")
            )
        return doc

    async def lines(self) -> AsyncIterator[BatchResult]:
        """The answer read as JSON lines, one BatchResult each, as they arrive."""
        assert self._response is not None
        blobs = self._new_blobs()
        started = False
        try:
            async for chunk in self._response.aiter_bytes():
                while chunk:
                    cut = chunk.find(b"\n")
                    piece, chunk = (
                        (chunk, b"") if cut < 0 else (chunk[:cut], chunk[cut + 1 :])
                    )
                    if piece:
                        blobs.feed(piece)
                        started = True
                    if cut >= 0:
                        if started:
                            yield self._line(blobs)
                        blobs, started = self._new_blobs(), False
        except (httpx.HTTPError, OSError) as exc:
            blobs.discard()
            outcome = transport_outcome(exc, self._url)
            raise BatchCallFailed(seal(outcome, self._secret)) from None
        if started:
            yield self._line(blobs)

    def _new_blobs(self) -> BlobExtractor:
        return BlobExtractor(spool_dir=self._spool_dir, spill_bytes=RESULT_SPILL_BYTES)

    def _line(self, blobs: BlobExtractor) -> BatchResult:
        kept = redact_bytes(blobs.finish(), self._secret)
        try:
            line = json.loads(kept)
        except ValueError:
            line = None
        if not isinstance(line, dict):
            blobs.discard()
            shown = clip(kept[:200].decode("utf-8", errors="replace"), 100)
            return BatchResult(
                None,
                None,
                {"code": 2, "message": f"unreadable result line: {shown!r}"},
            )
        key = line.get("key")
        return _result(line, key if isinstance(key, str) else None, blobs)


def _inline_body(head: bytes, path: Path) -> bytes:
    """A create body with the requests of a JSONL file inline (a small batch: it
    is under INLINE_LIMIT_BYTES, so it is built in memory)."""
    with path.open("rb") as source:
        requests = b",".join(inline_request(line) for line in source if line.strip())
    return head + requests + b"]}}}}"


def _inline_results(
    doc: Mapping[str, Any], blobs: BlobExtractor
) -> tuple[BatchResult, ...]:
    output = _output(doc)
    wrapped = output.get("inlinedResponses")
    listed = wrapped.get("inlinedResponses") if isinstance(wrapped, dict) else None
    if not isinstance(listed, list):
        return ()
    results = []
    for entry in listed:
        entry = entry if isinstance(entry, dict) else {}
        metadata = entry.get("metadata")
        key = metadata.get("key") if isinstance(metadata, dict) else None
        results.append(_result(entry, key if isinstance(key, str) else None, blobs))
    return tuple(results)


def _result(
    entry: Mapping[str, Any], key: str | None, blobs: BlobExtractor
) -> BatchResult:
    response = entry.get("response")
    error = entry.get("error")
    if isinstance(response, dict):
        return BatchResult(key, _dumps(response), None, blobs)
    if isinstance(error, dict):
        return BatchResult(key, None, error, blobs)
    return BatchResult(key, None, None, blobs)


def _output(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A done batch's output: the operation's `response` (ai.google.dev's REST
    samples read it there), else `metadata.output` (where google-genai reads it)."""
    for found in (doc.get("response"), _meta(doc).get("output"), doc.get("output")):
        if isinstance(found, dict) and (
            "inlinedResponses" in found or "responsesFile" in found
        ):
            return found
    return {}


def _meta(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = doc.get("metadata")
    return meta if isinstance(meta, dict) else {}


# google.rpc.Code -> the HTTP status it maps to (googleapis google/rpc/code.proto,
# "HTTP Mapping" of each code), and its name: a failed line is classified like the
# HTTP error its generateContent call would have got.
_RPC_CODES = {
    1: (499, "CANCELLED"),
    2: (500, "UNKNOWN"),
    3: (400, "INVALID_ARGUMENT"),
    4: (504, "DEADLINE_EXCEEDED"),
    5: (404, "NOT_FOUND"),
    6: (409, "ALREADY_EXISTS"),
    7: (403, "PERMISSION_DENIED"),
    8: (429, "RESOURCE_EXHAUSTED"),
    9: (400, "FAILED_PRECONDITION"),
    10: (409, "ABORTED"),
    11: (400, "OUT_OF_RANGE"),
    12: (501, "UNIMPLEMENTED"),
    13: (500, "INTERNAL"),
    14: (503, "UNAVAILABLE"),
    15: (500, "DATA_LOSS"),
    16: (401, "UNAUTHENTICATED"),
}


def _error_outcome(error: Mapping[str, Any], model: str) -> Outcome:
    """A result's google.rpc.Status (or an HTTP-style error) as an Outcome."""
    code = error.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else 2
    status, name = _RPC_CODES.get(code, (code, "")) if code < 100 else (code, "")
    label = error.get("status") if isinstance(error.get("status"), str) else name
    body = {"error": {**error, "code": status, "status": label}}
    outcome = classify_error(status, httpx.Headers(), _dumps(body), model=model)
    return replace(outcome, http_status=status)


def _url(endpoint: Endpoint, path: str) -> str:
    base = endpoint.base_url.rstrip("/")
    if base.endswith("/v1beta"):
        base = base[: -len("/v1beta")]
    return f"{base}/{path}"


def _same_host(upload_url: str, base_url: str) -> str:
    """The upload URL on the base URL's scheme and host, as google-genai rewrites
    it (_api_client.py _upload_fd): behind a proxy or relay, the answer may name
    the upstream host."""
    base, url = urlsplit(base_url), urlsplit(upload_url)
    return urlunsplit(url._replace(scheme=base.scheme, netloc=base.netloc))


def _count(stats: Mapping[str, Any], name: str, zero: bool = False) -> int | None:
    value = stats.get(name)
    if isinstance(value, int | str) and str(value).isdigit():
        return int(value)
    return 0 if zero else None


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
