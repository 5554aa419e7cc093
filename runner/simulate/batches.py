"""The Batch API as the simulator serves it: batches of generateContent requests
answered in the background, their long-running operations, and their results.

Owns: reading a batchGenerateContent body (inline requests or an uploaded JSONL
file), the batch's states and when they advance, what a line's answer becomes in a
batch (a response or a google.rpc.Status error), the results (inline, or a JSONL
file registered with the Files API) written to disk, and the operation JSON of get
and list, streamed from disk. Must not choose faults, build generateContent answers
or keep counters: the server answers each line and counts.

Wire shapes, as google-genai reads them (google/genai/batches.py
_BatchJob_from_mldev, _BatchJobDestination_from_mldev, _InlinedResponse_from_mldev)
and as the real API answered in exchanges quoted publicly (a gemini-2.5-flash batch
of December 2025, a file batch of August 2026):

    {"name": "batches/ID",
     "metadata": {"@type": "...v1main.GenerateContentBatch", "model": "models/M",
                  "displayName", "inputConfig": {"fileName"} (file input only),
                  "output": {"inlinedResponses": {"inlinedResponses": [...]}}
                            or {"responsesFile": "files/batch-ID"},
                  "createTime", "endTime", "updateTime",
                  "batchStats": {"requestCount": "3", "successfulRequestCount": "3"},
                  "state": "BATCH_STATE_SUCCEEDED", "name": "batches/ID"},
     "done": true,
     "response": {"@type": "...v1main.GenerateContentBatchOutput", <output again>}}

BatchStats counts are int64, so strings, and zero counts are left out (proto3 JSON).
A result file holds `{"response": {...}, "key": KEY}` or `{"error": {...}, "key":
KEY}` per line, in input order; inline results `{"response": {...}, "metadata":
{...}}`, in input order.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from runner.simulate.gemini import (
    INTERNAL_STATUS,
    RPC_CODES,
    Answer,
    dumps,
    error_reply,
    json_reply,
    not_found_entity,
    resource_id,
    rpc_status,
    timestamp,
)
from runner.simulate.wire import PIECE, Body, FileSlice

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping
    from pathlib import Path

    from runner.simulate.files import FileStore
    from runner.simulate.stats import BatchCounters

# GET /v1beta/batches, GET or DELETE /v1beta/batches/ID, POST .../ID:cancel
BATCHES_PATH = re.compile(r"^/(v1(?:beta|alpha)?)/batches(?:/([^/:]+)(:cancel)?)?$")
_TYPES = "type.googleapis.com/google.ai.generativelanguage.v1main."
BATCH_TYPE = _TYPES + "GenerateContentBatch"
OUTPUT_TYPE = _TYPES + "GenerateContentBatchOutput"
PENDING = "BATCH_STATE_PENDING"
RUNNING = "BATCH_STATE_RUNNING"
SUCCEEDED = "BATCH_STATE_SUCCEEDED"
FAILED = "BATCH_STATE_FAILED"
CANCELLED = "BATCH_STATE_CANCELLED"
EXPIRED = "BATCH_STATE_EXPIRED"
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, EXPIRED})
# Inline requests are for batches "under 20 MB" (ai.google.dev/gemini-api/docs/
# batch-api, "Inline requests"); a larger create body gets the front end's usual
# refusal of an oversized payload (its wording; unconfirmed for this method).
INLINE_LIMIT = 20 * 1024 * 1024
# Seconds a new batch stays pending, then runs, by default: small, so a demo shows
# each state and a test waits little (real batches take minutes to a day).
DEFAULT_PENDING = 0.5
DEFAULT_RUNNING = 1.0
# batches.list's page size when the client names none, and its ceiling (both
# unconfirmed: Google documents neither).
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
RESULTS_MIME_TYPE = "application/jsonl"
# How each way a batch can end without results reads in the operation's `error`
# (google.longrunning.Operation: a done operation has an error or a response).
# CANCELLED's code is ai.google.dev/api/batch-api's (batches.cancel); the other
# codes and all the messages are unconfirmed.
_ENDINGS = {
    CANCELLED: {"code": RPC_CODES["CANCELLED"], "message": "Operation was cancelled."},
    FAILED: {"code": RPC_CODES["INTERNAL"], "message": "Batch processing failed."},
    EXPIRED: {
        "code": RPC_CODES["DEADLINE_EXCEEDED"],
        "message": "The batch expired before it could complete.",
    },
}
# Answers a batch line cannot carry as a response (no whole JSON answer): the line
# gets Google's internal error instead.
_BROKEN = frozenset({"hang", "drop", "drop-mid-body", "truncated", "non-json"})
_PLACEHOLDER = "\x00results\x00"


@dataclass(slots=True)
class Batch:
    """One batch, its input on disk and, once done, its results on disk."""

    id: str
    seq: int  # creation order, for list paging
    model: str
    version: str
    display_name: str
    source: str  # "inline" or "file"
    input_file: str | None  # "files/ID" for file input
    input_path: Path  # one JSON object per line
    requests: int
    auth_style: str | None
    fault: str | None  # a batch-level fault kind
    run_at: float  # monotonic time it starts running
    end_at: float  # monotonic time it may end
    create_ns: int
    state: str = PENDING
    update_ns: int = 0
    end_ns: int | None = None
    succeeded: int = 0
    failed: int = 0
    results_path: Path | None = None
    results_size: int = 0
    results_file: str | None = None  # "files/batch-ID" for file input
    stopped: bool = False  # cancelled, deleted or reset: stop answering lines

    @property
    def name(self) -> str:
        return f"batches/{self.id}"


@dataclass(frozen=True, slots=True)
class LineOutcome:
    """What a line's generateContent answer becomes in a batch."""

    kind: str
    response: bytes | None  # the GenerateContentResponse, compact JSON
    error: dict[str, Any] | None  # a google.rpc.Status
    usage: Mapping[str, Any] | None = None
    images: int = 0


def line_outcome(kind: str, reply: Answer) -> LineOutcome:
    """The batch form of the answer `reply` (fault `kind`) to one line: its body
    as the response, an error answer's google.rpc.Status, or Google's internal
    error for "line-error" and answers that are no whole JSON body."""
    if kind == "line-error" or kind in _BROKEN or reply.mode != "full":
        return LineOutcome(kind, None, dict(INTERNAL_STATUS))
    if reply.status != 200:
        return LineOutcome(kind, None, rpc_status(reply.status, reply.body))
    return LineOutcome(kind, reply.body, None, reply.usage, reply.images)


if TYPE_CHECKING:
    from typing import TypeAlias

    # Answers one line of a batch: (batch, the request's JSON) -> outcome.
    AnswerLine: TypeAlias = Callable[[Batch, bytes], Awaitable[LineOutcome]]
    # Applies an update to the server's batch counters under its lock.
    Record: TypeAlias = Callable[[Callable[[BatchCounters], None]], None]


class BatchStore:
    """The batches of one server; each runs in a task of the server's own.

    Thread-safe for `reset` and lookups: the registry is guarded by its own lock.
    """

    def __init__(
        self,
        files: FileStore,
        *,
        answer_line: AnswerLine,
        record: Record,
    ) -> None:
        self._files = files
        self._answer_line = answer_line
        self._record = record
        self._lock = threading.Lock()
        self._batches: dict[str, Batch] = {}
        self._seq = 0

    def reset(self) -> None:
        """Forget every batch; running ones stop answering lines."""
        with self._lock:
            batches, self._batches = self._batches, {}
        for batch in batches.values():
            batch.stopped = True
            for path in (batch.input_path, batch.results_path):
                if path is not None and batch.source == "inline":
                    path.unlink(missing_ok=True)

    def get(self, batch_id: str) -> Batch | None:
        with self._lock:
            return self._batches.get(batch_id)

    # -- routes -------------------------------------------------------------------

    async def create(
        self,
        body: bytes,
        *,
        model: str,
        version: str,
        auth_style: str | None,
        pending: float,
        running: float,
        pick_fault: Callable[[str, list[str]], str | None],
    ) -> Batch | Answer:
        """Read a batchGenerateContent body and create its batch (not yet
        started), or answer the 400/404 that the body earns.

        `pick_fault(displayName, lines)` gives the batch-level fault kind, if any,
        from the displayName and the input lines that hold a `[sim:batch-`
        directive.
        """
        if len(body) > INLINE_LIMIT:
            return error_reply(
                400,
                f"Request payload size exceeds the limit: {INLINE_LIMIT} bytes.",
                "INVALID_ARGUMENT",
            )
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _invalid(f"Invalid JSON payload received. {exc}")
        batch_body = payload.get("batch") if isinstance(payload, dict) else None
        if not isinstance(batch_body, dict):
            return _invalid("* BatchGenerateContentRequest.batch: batch is required")
        display = _either(batch_body, "displayName", "display_name")
        display_name = display if isinstance(display, str) else ""
        config = _either(batch_body, "inputConfig", "input_config")
        if not isinstance(config, dict):
            return _invalid(
                "* BatchGenerateContentRequest.batch.input_config: input_config is "
                "required"
            )
        file_name = _either(config, "fileName", "file_name")
        inline = config.get("requests")
        if (file_name is None) == (inline is None):
            return _invalid(
                "* BatchGenerateContentRequest.batch.input_config: give exactly one "
                "of file_name and requests"
            )
        batch_id = resource_id(36)
        if inline is not None:
            requests = inline.get("requests") if isinstance(inline, dict) else None
            if not isinstance(requests, list) or not requests:
                return _invalid(
                    "* BatchGenerateContentRequest.batch.input_config.requests."
                    "requests: requests must not be empty"
                )
            if not all(isinstance(r, dict) for r in requests):
                return _invalid("Invalid value at 'batch.input_config.requests'")
            input_path = self._files.new_path(f"batch-{batch_id}-input")
            texts = await anyio.to_thread.run_sync(_write_lines, input_path, requests)
            source, count, input_file = "inline", len(requests), None
        else:
            if not isinstance(file_name, str):
                return _invalid("Invalid value at 'batch.input_config.file_name'")
            stored = self._files.get(file_name)
            if stored is None:
                return not_found_entity()
            input_path = stored.path
            count, texts = await anyio.to_thread.run_sync(_scan_lines, input_path)
            source, input_file = "file", stored.name
            if count == 0:
                return _invalid(f"{file_name} holds no requests.")
        fault = pick_fault(display_name, texts)
        now = time.monotonic()
        created = time.time_ns()
        with self._lock:
            self._seq += 1
            batch = Batch(
                id=batch_id,
                seq=self._seq,
                model=model,
                version=version,
                display_name=display_name,
                source=source,
                input_file=input_file,
                input_path=input_path,
                requests=count,
                auth_style=auth_style,
                fault=fault,
                run_at=now + pending,
                end_at=now + pending + running,
                create_ns=created,
                update_ns=created,
            )
            self._batches[batch_id] = batch

        def count_create(counters: BatchCounters) -> None:
            creates = counters.creates
            creates[display_name] = creates.get(display_name, 0) + 1

        self._record(count_create)
        self._summarize(batch)
        return batch

    def show(self, batch_id: str) -> Answer:
        """`GET /v1beta/batches/ID`: the batch's operation."""
        batch = self.get(batch_id)
        if batch is None:
            return not_found_entity()
        return _streamed(operation(batch))

    def cancel(self, batch_id: str) -> Answer:
        """`POST /v1beta/batches/ID:cancel`: the batch ends CANCELLED at once, with
        no results; `{}` as batches.cancel answers (ai.google.dev/api/batch-api).
        A batch that has ended already is refused (wording unconfirmed)."""
        batch = self.get(batch_id)
        if batch is None:
            return not_found_entity()
        if batch.state in TERMINAL:
            return error_reply(
                400,
                f"Batch {batch.name} has already ended ({batch.state}).",
                "FAILED_PRECONDITION",
            )
        self._end(batch, CANCELLED)
        return json_reply(200, {})

    def delete(self, batch_id: str) -> Answer:
        """`DELETE /v1beta/batches/ID`: forgotten (its lines stop being answered);
        `{}` as batches.delete answers."""
        with self._lock:
            batch = self._batches.pop(batch_id, None)
        if batch is None:
            return not_found_entity()
        batch.stopped = True
        return json_reply(200, {})

    def list(self, query: Mapping[str, list[str]]) -> Answer:
        """`GET /v1beta/batches?pageSize=&pageToken=`: operations, newest first,
        with nextPageToken while more remain (ListOperationsResponse)."""
        size_text = (query.get("pageSize") or [""])[0]
        token = (query.get("pageToken") or [""])[0]
        if size_text and not size_text.isdigit():
            return _invalid(f"Invalid value at 'page_size' (TYPE_INT32), {size_text!r}")
        size = min(int(size_text or 0) or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        before = None
        if token:
            if not token.isdigit():
                return _invalid("Invalid page token.")
            before = int(token)
        with self._lock:
            batches = sorted(self._batches.values(), key=lambda b: -b.seq)
        if before is not None:
            batches = [b for b in batches if b.seq < before]
        page, more = batches[:size], len(batches) > size
        if not page:
            return json_reply(200, {})
        parts: list[bytes | FileSlice] = [b'{"operations":[']
        for i, batch in enumerate(page):
            if i:
                parts.append(b",")
            parts += operation(batch).parts
        parts.append(b"]")
        if more:
            parts.append(b',"nextPageToken":' + dumps(str(page[-1].seq)))
        parts.append(b"}")
        return _streamed(Body(tuple(parts)))

    # -- running ------------------------------------------------------------------

    async def run(self, batch: Batch) -> None:
        """Take `batch` through its states by the clock, answering its lines while
        it runs; a batch-level fault ends it EXPIRED or FAILED without results."""
        await _sleep_until(batch.run_at)
        if batch.stopped:
            return
        self._move(batch, RUNNING)
        if batch.fault in ("batch-expired", "batch-failed"):
            await _sleep_until(batch.end_at)
            if not batch.stopped:
                self._end(batch, EXPIRED if batch.fault == "batch-expired" else FAILED)
            return
        results = self._files.new_path(f"batch-{batch.id}-results")
        hasher = hashlib.sha256()
        try:
            async with (
                await anyio.open_file(batch.input_path, "rb") as source,
                await anyio.open_file(results, "wb") as out,
            ):
                # lines are read and written about PIECE bytes at a time: a thread
                # hop per line would cost more than answering it
                held: list[bytes] = []
                held_size = 0
                while not batch.stopped:
                    read = source.wrapped.readlines
                    lines = await anyio.to_thread.run_sync(read, PIECE)
                    if not lines:
                        break
                    for raw in lines:
                        if batch.stopped or not raw.strip():
                            continue
                        line = await self._answer(batch, raw)
                        hasher.update(line)
                        held.append(line)
                        held_size += len(line)
                        if held_size >= PIECE:
                            await out.writelines(held)
                            held, held_size = [], 0
                await out.writelines(held)
        except OSError:
            if batch.stopped:
                return  # reset or deleted under it
            results.unlink(missing_ok=True)
            self._end(batch, FAILED)
            return
        if batch.stopped:
            results.unlink(missing_ok=True)
            return
        await _sleep_until(batch.end_at)
        if batch.stopped:
            results.unlink(missing_ok=True)
            return
        batch.results_path = results
        batch.results_size = results.stat().st_size
        if batch.source == "file":
            name = f"files/batch-{batch.id}"
            self._files.add_generated(
                name, results, RESULTS_MIME_TYPE, hasher.hexdigest()
            )
            batch.results_file = name
        self._end(batch, SUCCEEDED)

    async def _answer(self, batch: Batch, raw: bytes) -> bytes:
        """The result line for one input line."""
        problem: str | None = None
        try:
            item = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            item, problem = None, f"Invalid JSON payload received. {exc}"
        else:
            if not isinstance(item, dict) or not isinstance(item.get("request"), dict):
                problem = 'Each line needs a "request" object.'
        tail = b""
        if isinstance(item, dict):
            if batch.source == "file" and "key" in item:
                tail = b',"key":' + dumps(item["key"])
            elif batch.source == "inline" and item.get("metadata") is not None:
                tail = b',"metadata":' + dumps(item["metadata"])
        if problem is not None:
            error = {"code": RPC_CODES["INVALID_ARGUMENT"], "message": problem}
            outcome = LineOutcome("invalid-request", None, error)
        else:
            assert isinstance(item, dict)
            outcome = await self._answer_line(batch, dumps(item["request"]))
        if outcome.response is not None:
            head = b'{"response":' + outcome.response
            batch.succeeded += 1
        else:
            head = b'{"error":' + dumps(outcome.error)
            batch.failed += 1
        batch.update_ns = time.time_ns()
        self._summarize(batch)
        return head + tail + b"}\n"

    # -- states -------------------------------------------------------------------

    def _move(self, batch: Batch, state: str) -> None:
        batch.state = state
        batch.update_ns = time.time_ns()
        self._summarize(batch)

    def _end(self, batch: Batch, state: str) -> None:
        if state != SUCCEEDED:
            batch.stopped = True
        batch.end_ns = time.time_ns()
        self._move(batch, state)

    def _summarize(self, batch: Batch) -> None:
        if self.get(batch.id) is not batch:
            return  # reset or deleted: the counters are someone else's now
        summary = {
            "display_name": batch.display_name,
            "model": batch.model,
            "source": batch.source,
            "state": batch.state,
            "requests": batch.requests,
            "succeeded": batch.succeeded,
            "failed": batch.failed,
        }

        def update(counters: BatchCounters) -> None:
            counters.batches[batch.name] = summary  # type: ignore[assignment]

        self._record(update)


def operation(batch: Batch) -> Body:
    """The long-running operation of `batch`, as batches.get answers it; inline
    results are streamed from disk, twice (metadata.output and response), as the
    real API sends them."""
    metadata: dict[str, Any] = {
        "@type": BATCH_TYPE,
        "model": f"models/{batch.model}",
        "displayName": batch.display_name,
    }
    if batch.input_file is not None:
        metadata["inputConfig"] = {"fileName": batch.input_file}
    output = _output(batch)
    if output is not None:
        metadata["output"] = output
    metadata["createTime"] = timestamp(batch.create_ns)
    if batch.end_ns is not None:
        metadata["endTime"] = timestamp(batch.end_ns)
    metadata["updateTime"] = timestamp(batch.update_ns)
    metadata["batchStats"] = _batch_stats(batch)
    metadata["state"] = batch.state
    metadata["name"] = batch.name
    payload: dict[str, Any] = {"name": batch.name, "metadata": metadata}
    if batch.state in TERMINAL:
        payload["done"] = True
        if output is not None:
            payload["response"] = {"@type": OUTPUT_TYPE, **output}
        else:
            payload["error"] = _ENDINGS.get(batch.state, INTERNAL_STATUS)
    raw = dumps(payload)
    if output is None or batch.source != "inline":
        return Body((raw,))
    parts: list[bytes | FileSlice] = []
    for i, piece in enumerate(raw.split(dumps(_PLACEHOLDER))):
        if i:
            parts += _results_parts(batch)
        parts.append(piece)
    return Body(tuple(parts))


# -- private helpers --------------------------------------------------------------


def _output(batch: Batch) -> dict[str, Any] | None:
    if batch.state != SUCCEEDED:
        return None
    if batch.results_file is not None:
        return {"responsesFile": batch.results_file}
    return {"inlinedResponses": {"inlinedResponses": _PLACEHOLDER}}


def _results_parts(batch: Batch) -> tuple[bytes | FileSlice, ...]:
    """The inline results as a JSON array: the results file's lines, each newline
    sent as "," but the last, which is left out."""
    if batch.results_path is None or batch.results_size == 0:
        return (b"[]",)
    lines = FileSlice(batch.results_path, batch.results_size - 1, b",")
    return (b"[", lines, b"]")


def _batch_stats(batch: Batch) -> dict[str, str]:
    stats = {"requestCount": str(batch.requests)}
    if batch.succeeded:
        stats["successfulRequestCount"] = str(batch.succeeded)
    if batch.failed:
        stats["failedRequestCount"] = str(batch.failed)
    pending = batch.requests - batch.succeeded - batch.failed
    if pending and batch.state != SUCCEEDED:
        stats["pendingRequestCount"] = str(pending)
    return stats


def _write_lines(path: Path, requests: list[dict[str, Any]]) -> list[str]:
    """Write inline requests as the batch's input lines; those that hold a
    directive."""
    texts: list[str] = []
    with path.open("wb") as out:
        for item in requests:
            line = dumps(item)
            out.write(line + b"\n")
            if b"[sim:batch-" in line:
                texts.append(line.decode("utf-8", "replace"))
    return texts


def _scan_lines(path: Path) -> tuple[int, list[str]]:
    """The requests in a JSONL input file and the lines that hold a directive."""
    count, texts = 0, []
    with path.open("rb") as source:
        for raw in source:
            if not raw.strip():
                continue
            count += 1
            if b"[sim:batch-" in raw:
                texts.append(raw.decode("utf-8", "replace"))
    return count, texts


def _streamed(body: Body) -> Answer:
    answer = Answer(200, b"")
    answer.streamed = body
    return answer


async def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        await anyio.sleep(delay)


def _invalid(message: str) -> Answer:
    return error_reply(400, message, "INVALID_ARGUMENT")


def _either(mapping: dict[str, Any], camel: str, snake: str) -> Any:
    return mapping[camel] if camel in mapping else mapping.get(snake)
