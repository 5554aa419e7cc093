"""`SimServer`: the simulated API's lifecycle and the path of a request through it.

Owns: listening (from a daemon thread or in a caller's task group), accepting
connections, the routes (generateContent, the Batch and Files APIs or the relay's 404
for them, relay files, `/_sim/*` control), the order of a request's checks (key,
body, rpm limit, fault) and of a batch line's (the same but the rpm limit), latency,
the temporary folder batches and files live in, statistics (snapshots and
`wait_until`) and reset.
Must not import any other runner module, keep an API key, or use the network beyond
its own listening socket.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import random
import secrets
import tempfile
import threading
import time
import urllib.parse
from array import array
from collections import OrderedDict, deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
from anyio.abc import SocketAttribute, SocketListener
from anyio.from_thread import BlockingPortal

from runner.simulate.batches import (
    BATCHES_PATH,
    DEFAULT_PENDING,
    DEFAULT_RUNNING,
    Batch,
    BatchStore,
    LineOutcome,
    line_outcome,
)
from runner.simulate.canvas import Canvases
from runner.simulate.faults import (
    BATCH_FAULT_KINDS,
    DEFAULT_SLOW_DELAY,
    DIRECTIVE,
    Fault,
    FaultRules,
    answer,
    directive_fault,
    parse_rules,
)
from runner.simulate.files import FILE_PATH, UPLOAD_PATH, FileStore
from runner.simulate.gemini import (
    BATCH_CREATE_PATH,
    GENERATE_PATH,
    KEY_INVALID,
    RELAY_401,
    Answer,
    Target,
    auth_of,
    error_reply,
    invalid_signature,
    json_reply,
    key_digest,
    key_matches,
    model_not_found,
    not_found_page,
    relay_not_found,
)
from runner.simulate.models import DEFAULT_SIZE, EXTRA_MODEL_SPEC, MODELS
from runner.simulate.request import Generate, parse_generate, refusal
from runner.simulate.stats import BodyStats, Counters, Stats, recorder
from runner.simulate.wire import (
    DISCONNECTS,
    send,
    serve_connection,
    wait_for_disconnect,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from types import TracebackType

    from anyio.abc import SocketStream, TaskGroup, TaskStatus
    from anyio.streams.buffered import BufferedByteReceiveStream

    from runner.simulate.models import ModelSpec
    from runner.simulate.stats import BatchCounters
    from runner.simulate.wire import Reply, Request

logger = logging.getLogger(__name__)

# Thought signatures remembered (about 200 bytes each with their bookkeeping).
MAX_SIGNATURES = 100_000


class SimServer:
    """The simulated API; `start()` serves from a daemon thread, `serve()` in a loop.

    Each generateContent request picks its fault in this order: a `[sim:KIND]`,
    `[sim:KIND*N]` (first N requests of that exact body) or `[sim:KIND retry_after=S
    delay=S size=B]` directive in the prompt; else the first `add_fault` rule that
    fires; else a random kind from `fault_mix` with probability `fault_rate`.

    Batches (unless `batch_support` is off, as behind a relay that answers 404):
    each stays pending `batch_pending` seconds, then runs at least `batch_running`
    seconds while its lines are answered one by one the way generateContent
    requests are (same faults, same usage; no rpm limit or latency), then ends.
    A share `line_error_rate` of lines answers an error object; batch-level faults
    (BATCH_FAULT_KINDS) come from rules and `[sim:batch-...]` directives.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        latency_jitter: float = 0.0,
        image_scale: float = 1.0,
        api_key: str | None = None,
        fault_rate: float = 0.0,
        fault_mix: Sequence[str] = (),
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        rpm_limit: float | None = None,
        image_pad_bytes: int = 0,
        reference_image_tokens: int | None = None,
        thought_images: int = 2,
        extra_models: Sequence[str] = (),
        thoughts_tokens: int | None = None,
        images_per_answer: int = 1,
        batch_pending: float = DEFAULT_PENDING,
        batch_running: float = DEFAULT_RUNNING,
        line_error_rate: float = 0.0,
        batch_support: bool = True,
        reuse_answers: bool = False,
        record_latencies: bool = False,
    ) -> None:
        self._faults = FaultRules(
            rate=fault_rate, mix=fault_mix, seed=seed, line_error_rate=line_error_rate
        )
        if batch_pending < 0 or batch_running < 0:
            raise ValueError("batch_pending and batch_running must be >= 0")
        if image_scale <= 0:
            raise ValueError("image_scale must be > 0")
        if not 0 <= thought_images <= 2:
            raise ValueError("thought_images must be 0, 1 or 2")
        if reference_image_tokens is not None and reference_image_tokens < 0:
            raise ValueError("reference_image_tokens must be >= 0")
        if thoughts_tokens is not None and thoughts_tokens < 0:
            raise ValueError("thoughts_tokens must be >= 0")
        if images_per_answer < 1:
            raise ValueError("images_per_answer must be >= 1")
        # Tokens billed per input image: each model's own figure (models.py says
        # which are unconfirmed) unless this overrides them all.
        self.reference_image_tokens = reference_image_tokens
        # Interim images a thinking model sends when asked for its thoughts ("up to
        # two" in Google's image-generation page).
        self.thought_images = thought_images
        # What makes answers cost more than a runner's estimate: thinking tokens,
        # billed as text output whether or not thoughts are returned (Google's
        # pricing page: "Output price (including thinking tokens)"), per answer
        # (None: 64 to 191, by the prompt); and final images per answer, each
        # billed as image output. One image per answer is the documented default
        # (candidateCount 1); how often a real answer holds two is unconfirmed,
        # hence a parameter.
        self.thoughts_tokens = thoughts_tokens
        self.images_per_answer = images_per_answer
        # Model names served beyond Google's (a relay's own), like 3.1 Flash Image.
        self._models = dict(MODELS) | dict.fromkeys(extra_models, EXTRA_MODEL_SPEC)
        self.latency = latency
        self.latency_jitter = latency_jitter
        self.image_scale = image_scale
        self.seed = seed
        # Like a per-minute quota: beyond `rpm_limit` requests in the trailing
        # 60 s, answer 429 with a RetryInfo saying when a slot frees up.
        self.rpm_limit = rpm_limit
        self._accepted: deque[float] = deque()
        # Real 4K answers are ~15 MB of PNG; a flat test image compresses to a few
        # KB, so pad PNGs with a private chunk to make transfer sizes realistic.
        self.image_pad_bytes = image_pad_bytes
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        # Only a digest is kept, so the key itself never sits in server memory dumps.
        self._key_digest = key_digest(api_key) if api_key is not None else None
        self._lock = threading.Lock()
        # Wakes `wait_until` when a connection opens or a request starts or ends;
        # notified only while someone waits, and tested inline rather than through
        # a helper, so serving pays an integer test and no call.
        self._changed = threading.Condition(self._lock)
        self._waiters = 0
        self._stats = Counters()
        self._jitter_rng = random.Random(seed + 1)
        # Each request's drawn latency in the order drawn (`latencies()`), for a
        # benchmark to replay with a perfect scheduler; off by default, since a
        # long-lived server would keep them all.
        self._latencies: array[float] | None = array("d") if record_latencies else None
        # A plain image answer built once per request content and sent again to
        # every equal request, so that a benchmark at 1,000 requests in flight
        # measures its client, not this server's PNG and base64 encoding. Same
        # bytes each time (label, responseId and all).
        self._answers: _AnswerCache | None = _AnswerCache() if reuse_answers else None
        self._files: OrderedDict[str, bytes] = OrderedDict()
        # The thought signatures it issued (decoded), newest last: a later turn
        # that sends back one it never issued is refused, as the real API does.
        # Bounded: the oldest are forgotten (kept across reset(), like the API's).
        self._signatures: OrderedDict[bytes, None] = OrderedDict()
        self._canvases = Canvases()
        self._thread: threading.Thread | None = None
        self._portal: BlockingPortal | None = None
        self._start_error: BaseException | None = None
        # The Batch and Files APIs: turnaround, support, and what they hold (on
        # disk, in a temporary folder that lives as long as `serve`).
        self.batch_pending = batch_pending
        self.batch_running = batch_running
        self.batch_support = batch_support
        self._file_store = FileStore()
        self._batches = BatchStore(
            self._file_store, answer_line=self._answer_line, record=self._record
        )
        self._task_group: TaskGroup | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321 (only once listening)."""
        if self._port is None:
            raise RuntimeError("the simulator is not listening yet")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    @property
    def fault_rate(self) -> float:
        """How often a request without a directive or rule gets a random fault."""
        return self._faults.rate

    @property
    def fault_mix(self) -> tuple[str, ...]:
        """The kinds random faults are drawn from."""
        return self._faults.mix

    @property
    def line_error_rate(self) -> float:
        """How often a batch line without a directive or rule answers an error."""
        return self._faults.line_error_rate

    def start(self) -> SimServer:
        """Serve from a daemon thread with its own event loop; return once listening."""
        if self._thread is not None:
            raise RuntimeError("the simulator is already started")
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._thread_main, args=(ready,), name="runner-simulate", daemon=True
        )
        self._thread.start()
        ready.wait()
        if self._start_error is not None:
            self._thread.join()
            self._thread = None
            error, self._start_error = self._start_error, None
            raise error
        return self

    def stop(self) -> None:
        """Stop serving; hanging and sleeping handlers are cancelled at once."""
        portal, thread = self._portal, self._thread
        self._portal = None
        self._thread = None
        if portal is not None:
            try:
                portal.call(portal.stop)
            except RuntimeError:
                pass  # the loop already ended
        if thread is not None:
            thread.join(timeout=10)

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def add_fault(self, fault: Fault) -> None:
        """Append a rule; rules are tried in order and the first that fires wins."""
        with self._lock:
            self._faults.add(fault)

    def reset(self) -> None:
        """Clear statistics and fault rules, reseed the random faults, and forget
        every batch (running ones stop) and file."""
        self._batches.reset()
        self._file_store.reset()
        with self._lock:
            self._faults.reset()
            # requests still being reply will decrement the new counter
            self._stats = Counters(in_flight=self._stats.in_flight)
            self._jitter_rng.seed(self.seed + 1)
            if self._latencies is not None:
                self._latencies = array("d")
            self._files.clear()
            if self._waiters:
                self._changed.notify_all()

    def stats(self) -> Stats:
        """A snapshot of the counters, safe to read from any thread."""
        with self._lock:
            return self._stats.snapshot()

    def latencies(self) -> list[float]:
        """Each generateContent request's drawn latency in seconds, in the order
        drawn since the start or the last reset (needs `record_latencies`)."""
        with self._lock:
            return [] if self._latencies is None else self._latencies.tolist()

    def wait_until(
        self, condition: Callable[[Stats], bool], *, timeout: float = 10.0
    ) -> Stats:
        """Block until `condition(stats)` holds and return those stats.

        Checked at once, then each time a connection opens, a generateContent request
        starts or ends, a batch changes or answers a line, a file is uploaded or
        downloaded, or the server is reset. TimeoutError if no such change makes
        it hold within `timeout` seconds. Call it from another thread than the
        server's event loop, which it would block.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            self._waiters += 1
            try:
                while not condition(stats := self._stats.snapshot()):
                    remaining = deadline - time.monotonic()
                    # a timed-out wait fails even if the condition holds by now: a
                    # change the server did not signal must not pass unnoticed
                    if remaining <= 0 or not self._changed.wait(remaining):
                        raise TimeoutError(
                            f"simulator stats did not reach the condition in "
                            f"{timeout:g} s: {self._stats.snapshot()}"
                        )
                return stats
            finally:
                self._waiters -= 1

    async def serve(
        self, *, task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen and serve until cancelled; `task_status.started` gets the URL."""
        listener = await anyio.create_tcp_listener(
            local_host=self.host, local_port=self._requested_port
        )
        with tempfile.TemporaryDirectory(prefix="runner-simulate-") as folder:
            self._file_store.open(Path(folder))
            try:
                async with listener, anyio.create_task_group() as tg:
                    self._port = listener.extra(SocketAttribute.local_port)
                    self._task_group = tg
                    for sub in listener.listeners:
                        assert isinstance(sub, SocketListener)
                        tg.start_soon(self._accept_loop, sub, tg)
                    task_status.started(self.url)
            finally:
                # the folder goes: forget what was in it (the counters stay)
                self._task_group = None
                self._batches.reset()
                self._file_store.reset()

    # -- threads and connections --------------------------------------------------

    def _thread_main(self, ready: threading.Event) -> None:
        try:
            anyio.run(self._thread_async, ready)
        except BaseException as exc:  # surfaced by start(), never lost in the thread
            if not ready.is_set():
                self._start_error = exc
            else:
                logger.exception("simulator event loop crashed")
        finally:
            ready.set()

    async def _thread_async(self, ready: threading.Event) -> None:
        async with BlockingPortal() as portal, anyio.create_task_group() as tg:
            await tg.start(self.serve)
            self._portal = portal
            ready.set()
            await portal.sleep_until_stopped()
            tg.cancel_scope.cancel()

    async def _accept_loop(self, listener: SocketListener, tg: TaskGroup) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError:
                # e.g. out of file descriptors: back off rather than stop serving
                await anyio.sleep(0.05)
                continue
            with self._lock:
                self._stats.connections += 1
                if self._waiters:
                    self._changed.notify_all()
            tg.start_soon(
                serve_connection, stream, self._respond, _refusal, _streams_body
            )

    async def _respond(
        self, stream: SocketStream, reader: BufferedByteReceiveStream, req: Request
    ) -> bool:
        """Answer one request; False when the connection must close afterwards."""
        generate = GENERATE_PATH.match(req.path)
        if generate is None:
            try:
                other = await self._route_other(req, reader)
            except DISCONNECTS:
                raise  # the client left mid-upload
            except Exception:
                logger.exception("simulator failed to answer %s", req.path)
                other = error_reply(500, "simulator error", "INTERNAL")
            if other.mode == "hang":  # batch-create-hang
                await wait_for_disconnect(reader)
                return False
            return await self._send_counted(stream, other, req.keep_alive)
        if req.method != "POST":
            refused = error_reply(405, "Use POST.", "INVALID_ARGUMENT")
            return await send(stream, refused, keep_alive=req.keep_alive)
        with self._lock:
            self._stats.in_flight += 1
            self._stats.max_in_flight = max(
                self._stats.max_in_flight, self._stats.in_flight
            )
            if self._waiters:
                self._changed.notify_all()
        try:
            try:
                reply = await self._generate(req, generate.group(2), generate.group(1))
            except Exception:
                logger.exception("simulator failed to build an answer")
                reply = error_reply(500, "simulator error", "INTERNAL")
            if reply.mode == "hang":
                await wait_for_disconnect(reader)
                return False
            # Counted before the write: a client that has read the answer must find
            # it in stats(). Taken back if the write fails.
            record = reply.on_sent if reply.mode == "full" else None
            with self._lock:
                stats = self._stats
                if record is not None:
                    record(stats, 1)
            try:
                return await send(stream, reply, keep_alive=req.keep_alive)
            except BaseException:
                if record is not None:
                    with self._lock:
                        record(stats, -1)
                raise
        finally:
            with self._lock:
                self._stats.in_flight -= 1
                if self._waiters:
                    self._changed.notify_all()

    async def _send_counted(
        self, stream: SocketStream, reply: Reply, keep_alive: bool
    ) -> bool:
        """Send `reply`, counting what its `on_sent` counts before the write (a
        client that has read it must find it in stats()), taken back on failure."""
        record = reply.on_sent if isinstance(reply, Answer) else None
        if record is None:
            return await send(stream, reply, keep_alive=keep_alive)
        with self._lock:
            stats = self._stats
            record(stats, 1)
            if self._waiters:
                self._changed.notify_all()
        try:
            return await send(stream, reply, keep_alive=keep_alive)
        except BaseException:
            with self._lock:
                record(stats, -1)
            raise

    async def _route_other(
        self, req: Request, reader: BufferedByteReceiveStream
    ) -> Reply:
        if _batch_route(req.path):
            if not self.batch_support:
                return relay_not_found(req.method, req.path)
            return await self._route_batch(req, reader)
        if req.path.startswith("/files/"):
            if req.method != "GET":
                return error_reply(405, "Use GET.", "INVALID_ARGUMENT")
            with self._lock:
                data = self._files.pop(req.path[len("/files/") :], None)
            if data is None:
                return error_reply(404, "No such file.", "NOT_FOUND")
            return Answer(200, data, content_type="image/png")
        if req.path == "/_sim/stats" and req.method == "GET":
            return json_reply(200, self.stats())
        if req.path == "/_sim/latencies" and req.method == "GET":
            return json_reply(200, {"latencies": self.latencies()})
        if req.path == "/_sim/reset" and req.method == "POST":
            self.reset()
            return json_reply(200, {"ok": True})
        if req.path == "/_sim/faults" and req.method == "POST":
            try:
                faults = parse_rules(req.body)
            except (ValueError, TypeError) as exc:
                return error_reply(400, str(exc), "INVALID_ARGUMENT")
            for fault in faults:
                self.add_fault(fault)
            with self._lock:
                count = len(self._faults)
            return json_reply(200, {"ok": True, "rules": count})
        return not_found_page(req.path)

    # -- generateContent ----------------------------------------------------------

    async def _generate(self, req: Request, model: str, version: str) -> Answer:
        auth_style, key = auth_of(req.headers)
        key_ok = self._key_digest is None or key_matches(key, self._key_digest)
        kind, reply, fault, body_hash = await self._model_answer(
            req.body, model, version, auth_style, key_ok=key_ok, line=False
        )
        with self._lock:
            self._stats.by_kind[kind] = self._stats.by_kind.get(kind, 0) + 1
            if reply.mode in ("full", "half"):
                status = self._stats.by_status
                status[reply.status] = status.get(reply.status, 0) + 1
        reply.on_sent = recorder(reply, body_hash)

        delay = self._latency()
        if fault is not None and fault.kind == "slow":
            delay += fault.delay if fault.delay is not None else DEFAULT_SLOW_DELAY
        if delay > 0 and reply.mode != "hang":
            await anyio.sleep(delay)
        return reply

    async def _model_answer(
        self,
        raw: bytes,
        model: str,
        version: str,
        auth_style: str | None,
        *,
        key_ok: bool,
        line: bool,
    ) -> tuple[str, Answer, Fault | None, str]:
        """(kind, answer, fault, body hash) of the model `model` to the request
        body `raw`: a generateContent request, or a batch's line if `line`."""
        body_hash = hashlib.sha256(raw).hexdigest()
        parsed = parse_generate(raw)
        gen = parsed if isinstance(parsed, Generate) else None
        with self._lock:
            if not line:
                self._stats.requests += 1
            body = self._stats.bodies.get(body_hash)
            if body is None:
                body = self._stats.bodies[body_hash] = BodyStats(
                    received=0,
                    succeeded=0,
                    text=gen.text if gen else "",
                    aspect_ratio=gen.aspect_ratio if gen else None,
                    image_size=gen.image_size if gen else None,
                    auth=auth_style,
                    contents=gen.contents if gen else (),
                )
            body["received"] += 1
            body["auth"] = auth_style
            received = body["received"]

        fault: Fault | None = None
        spec = self._models.get(model)
        if not key_ok:
            # Google answers a bad x-goog-api-key with a 400; the relay a 401.
            kind = "unauthorized"
            if auth_style == "goog":
                reply = json_reply(400, KEY_INVALID)
            else:
                reply = json_reply(401, RELAY_401)
        elif not isinstance(parsed, Generate):
            kind, reply = "invalid-request", _google_reply(parsed)
        elif spec is None:
            kind = "model-not-found"
            reply = json_reply(404, model_not_found(model, version))
        elif (refused := refusal(parsed, spec)) is not None:
            kind, reply = "invalid-request", _google_reply(refused)
        elif (forged := self._unknown_signature(parsed)) is not None:
            kind, reply = "invalid-request", json_reply(400, invalid_signature(forged))
        else:
            gen = parsed
            target = Target(
                model=model,
                version=version,
                spec=spec,
                image_tokens=(
                    spec.input_image_tokens
                    if self.reference_image_tokens is None
                    else self.reference_image_tokens
                ),
                thought_images=self.thought_images,
                thoughts_tokens=self.thoughts_tokens,
                images_per_answer=self.images_per_answer,
            )

            async def render(request: Generate) -> bytes:
                return await self._png(request, spec)

            if not line and (wait := self._over_rpm()) is not None:
                kind = "rate-limited"
                fault = Fault("429", retry_after=wait)
                reply = await answer(
                    gen, target, fault, render=render, publish=self._publish
                )
            else:
                # a directive in the prompt wins over rules and random faults
                directive = DIRECTIVE.search(gen.text)
                if directive is not None:
                    chosen = directive_fault(directive, received)
                else:
                    with self._lock:
                        chosen = self._faults.pick(gen.text, line=line)
                if isinstance(chosen, Fault) and _inert(chosen.kind, line):
                    chosen = None
                if isinstance(chosen, str):
                    kind = "invalid-request"
                    reply = error_reply(400, chosen, "INVALID_ARGUMENT")
                elif chosen is not None and chosen.kind == "line-error":
                    fault, kind = chosen, chosen.kind
                    reply = error_reply(500, "Internal error encountered.", "INTERNAL")
                elif chosen is None and self._answers is not None:
                    kind = "ok"
                    reply = await self._answers.reply(
                        # equal bodies: a Generate holds dicts, so is unhashable
                        (model, version, body_hash),
                        lambda: answer(
                            gen, target, None, render=render, publish=self._publish
                        ),
                    )
                else:
                    fault = chosen
                    kind = fault.kind if fault else "ok"
                    reply = await answer(
                        gen, target, fault, render=render, publish=self._publish
                    )
        with self._lock:  # a batch line's signatures may be continued too
            for signature in reply.signatures:
                self._signatures[base64.b64decode(signature)] = None
            while len(self._signatures) > MAX_SIGNATURES:
                self._signatures.popitem(last=False)
        return kind, reply, fault, body_hash

    async def _answer_line(self, batch: Batch, raw: bytes) -> LineOutcome:
        """Answer one line of `batch` the way generateContent would, and count it."""
        kind, reply, _, body_hash = await self._model_answer(
            raw, batch.model, batch.version, batch.auth_style, key_ok=True, line=True
        )
        outcome = line_outcome(kind, reply)
        with self._lock:
            counters = self._stats.batch
            counters.lines += 1
            counters.by_kind[kind] = counters.by_kind.get(kind, 0) + 1
            if outcome.usage is not None:
                for name in counters.usage:
                    counters.usage[name] += int(outcome.usage.get(name, 0))
            if outcome.images:
                counters.images += outcome.images
                body = self._stats.bodies.get(body_hash)
                if body is not None:
                    body["succeeded"] += 1
            if self._waiters:
                self._changed.notify_all()
        # a long batch must not hold up the other connections
        await anyio.lowlevel.checkpoint()
        return outcome

    def _record(self, update: Callable[[BatchCounters], None]) -> None:
        """Apply `update` to the batch counters and wake `wait_until`."""
        with self._lock:
            update(self._stats.batch)
            if self._waiters:
                self._changed.notify_all()

    # -- the Batch and Files APIs -------------------------------------------------

    async def _route_batch(
        self, req: Request, reader: BufferedByteReceiveStream
    ) -> Reply:
        """The Batch and Files APIs' routes (batch support on)."""
        upload = UPLOAD_PATH.match(req.path) is not None
        if upload and "upload_id=" in req.query:
            # a session URL is its own authorization, as in Google's resumable
            # protocol: the key was checked when the session started
            if req.method != "POST":
                return error_reply(405, "Use POST.", "INVALID_ARGUMENT")
            reply, stored = await self._file_store.upload(req, reader, self.url)
            if stored is not None:
                self._record(_count_upload)
            return reply
        auth_style, key = auth_of(req.headers)
        if self._key_digest is not None and not key_matches(key, self._key_digest):
            if auth_style == "goog":
                return json_reply(400, KEY_INVALID)
            return json_reply(401, RELAY_401)
        if upload:
            command = req.headers.get("x-goog-upload-command", "").strip().lower()
            protocol = req.headers.get("x-goog-upload-protocol", "").strip().lower()
            if req.method != "POST" or protocol != "resumable" or command != "start":
                return error_reply(
                    400,
                    "Only resumable uploads are served: POST with "
                    "X-Goog-Upload-Protocol: resumable and X-Goog-Upload-Command: "
                    "start.",
                    "INVALID_ARGUMENT",
                )
            return self._file_store.start(req, self.url)
        if (create := BATCH_CREATE_PATH.match(req.path)) is not None:
            if req.method != "POST":
                return error_reply(405, "Use POST.", "INVALID_ARGUMENT")
            return await self._create_batch(req, create.group(2), create.group(1))
        if (found := BATCHES_PATH.match(req.path)) is not None:
            batch_id, cancel = found.group(2), found.group(3)
            if batch_id is None:
                if req.method != "GET":
                    return error_reply(405, "Use GET.", "INVALID_ARGUMENT")
                return self._batches.list(urllib.parse.parse_qs(req.query))
            if cancel:
                if req.method != "POST":
                    return error_reply(405, "Use POST.", "INVALID_ARGUMENT")
                return self._batches.cancel(batch_id)
            if req.method == "DELETE":
                return self._batches.delete(batch_id)
            if req.method != "GET":
                return error_reply(405, "Use GET or DELETE.", "INVALID_ARGUMENT")
            return self._batches.show(batch_id)
        if (file := FILE_PATH.match(req.path)) is not None:
            file_id, download = file.group(3), file.group(4)
            if download:
                if req.method != "GET":
                    return error_reply(405, "Use GET.", "INVALID_ARGUMENT")
                reply = self._file_store.download(req, file_id)
                if reply.streamed is not None:
                    reply.on_sent = _count_download
                return reply
            if file.group(1):  # /download/... without :download
                return not_found_page(req.path)
            if req.method == "DELETE":
                return self._delete_file(file_id)
            if req.method != "GET":
                return error_reply(405, "Use GET or DELETE.", "INVALID_ARGUMENT")
            return self._file_store.describe(file_id, self.url)
        return not_found_page(req.path)

    def _delete_file(self, file_id: str) -> Answer:
        """`DELETE /v1beta/files/ID`, counted; a "file-delete-error" rule matching
        the file's displayName answers Google's internal error instead."""
        stored = self._file_store.get(f"files/{file_id}")
        if stored is not None:
            with self._lock:
                fails = self._faults.pick_file_delete(stored.display_name or "")
            if fails:
                return error_reply(500, "Internal error encountered.", "INTERNAL")
        reply = self._file_store.delete(file_id)
        if reply.status == 200:
            self._record(_count_delete)
        return reply

    async def _create_batch(self, req: Request, model: str, version: str) -> Answer:
        """`POST /v1beta/models/M:batchGenerateContent`: create the batch, start it
        in the background, and answer its operation (or drop the connection
        instead, for "batch-create-lost", or hold it unanswered, for
        "batch-create-hang")."""
        if model not in self._models:
            return json_reply(404, model_not_found(model, version))
        auth_style, _ = auth_of(req.headers)

        def pick(display_name: str, texts: list[str]) -> str | None:
            with self._lock:
                return self._faults.pick_batch(display_name, texts)

        created = await self._batches.create(
            req.body,
            model=model,
            version=version,
            auth_style=auth_style,
            pending=self.batch_pending,
            running=self.batch_running,
            pick_fault=pick,
        )
        if isinstance(created, Answer):
            return created
        task_group = self._task_group
        assert task_group is not None
        task_group.start_soon(self._run_batch, created)
        if created.fault == "batch-create-lost":
            return Answer(0, b"", mode="drop")
        if created.fault == "batch-create-hang":
            return Answer(0, b"", mode="hang")
        return self._batches.show(created.id)

    async def _run_batch(self, batch: Batch) -> None:
        try:
            await self._batches.run(batch)
        except Exception:
            logger.exception("simulator batch %s failed", batch.name)

    def _unknown_signature(self, gen: Generate) -> int | None:
        """The content index of a thought signature sent back that this server
        never issued (or has forgotten), None if there is none."""
        if not gen.signatures:
            return None
        with self._lock:
            for content, signature in gen.signatures:
                if signature not in self._signatures:
                    return content
        return None

    def _over_rpm(self) -> float | None:
        """Seconds until a slot frees up if this request passes rpm_limit, else
        None (and the request takes a slot)."""
        if self.rpm_limit is None:
            return None
        now = time.monotonic()
        with self._lock:
            while self._accepted and now - self._accepted[0] >= 60.0:
                self._accepted.popleft()
            if len(self._accepted) >= self.rpm_limit:
                return max(0.05, 60.0 - (now - self._accepted[0]))
            self._accepted.append(now)
        return None

    def _latency(self) -> float:
        with self._lock:
            delay = self.latency
            if self.latency_jitter > 0:
                jitter = self._jitter_rng.uniform(
                    -self.latency_jitter, self.latency_jitter
                )
                delay = max(0.0, delay + jitter)
            if self._latencies is not None:
                self._latencies.append(delay)
        return delay

    async def _png(self, gen: Generate, spec: ModelSpec) -> bytes:
        """The PNG of one answer; without a ratio, the first reference's decides."""
        ratio = gen.aspect_ratio
        if ratio is None and gen.reference_size is not None:
            ratio = spec.nearest_ratio(*gen.reference_size)
        size = (gen.image_size or DEFAULT_SIZE) if spec.sizes else DEFAULT_SIZE
        width, height = spec.dimensions(ratio, size, scale=self.image_scale)
        return await self._canvases.png(
            gen.text,
            width,
            height,
            f"{ratio or '1:1'} {size}",
            pad_bytes=self.image_pad_bytes,
        )

    def _publish(self, png: bytes | None) -> str:
        """Serve `png` once under /files/ (what a relay-url answer links to); for
        None, a URL under /files/ that answers 404 (a relay's dead link)."""
        name = f"{secrets.token_hex(8)}.png"
        if png is None:
            return f"{self.url}/files/{name}"
        with self._lock:
            self._files[name] = png
            while len(self._files) > 256:
                self._files.popitem(last=False)
        return f"{self.url}/files/{name}"


def _batch_route(path: str) -> bool:
    """Whether `path` belongs to the Batch or Files API."""
    return (
        UPLOAD_PATH.match(path) is not None
        or BATCHES_PATH.match(path) is not None
        or BATCH_CREATE_PATH.match(path) is not None
        or FILE_PATH.match(path) is not None
    )


def _streams_body(req: Request) -> bool:
    """Upload commands stream their body to disk rather than into memory."""
    return UPLOAD_PATH.match(req.path) is not None and "upload_id=" in req.query


def _inert(kind: str, line: bool) -> bool:
    """Whether a fault of `kind` does nothing here: batch kinds to generateContent,
    batch-level kinds to a batch's lines."""
    return kind in BATCH_FAULT_KINDS and (not line or kind != "line-error")


def _count_upload(counters: BatchCounters) -> None:
    counters.uploads += 1


def _count_delete(counters: BatchCounters) -> None:
    counters.deletes += 1


def _count_download(stats: Counters, sign: int) -> None:
    stats.batch.downloads += sign


class _AnswerCache:
    """Plain image answers by request content, least recently used dropped past
    `budget` bytes of bodies."""

    budget = 256 * 1024 * 1024

    def __init__(self) -> None:
        self._bodies: OrderedDict[object, Answer] = OrderedDict()
        self._used = 0

    async def reply(
        self, key: object, build: Callable[[], Awaitable[Answer]]
    ) -> Answer:
        """A fresh Answer (statistics hook its own) with the cached body for `key`,
        built by `build` the first time."""
        cached = self._bodies.get(key)
        if cached is None:
            cached = await build()
            # Every await is behind us: only the event loop's thread gets here.
            self._bodies[key] = cached
            self._used += len(cached.body)
            while self._used > self.budget and len(self._bodies) > 1:
                _, old = self._bodies.popitem(last=False)
                self._used -= len(old.body)
        else:
            self._bodies.move_to_end(key)
        return Answer(
            cached.status,
            cached.body,
            headers=cached.headers,
            usage=cached.usage,
            images=cached.images,
            signatures=cached.signatures,
        )


def _google_reply(body: dict[str, Any]) -> Answer:
    """A Google error body as an answer with its own status code."""
    return json_reply(int(body["error"]["code"]), body)


def _refusal(status: int, message: str) -> Reply:
    """The answer to a request the HTTP layer cannot frame."""
    return error_reply(status, message, "INVALID_ARGUMENT")
