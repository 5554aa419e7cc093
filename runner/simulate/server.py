"""`SimServer`: the simulated API's lifecycle and the path of a request through it.

Owns: listening (from a daemon thread or in a caller's task group), accepting
connections, the routes (generateContent, relay files, `/_sim/*` control), the order
of a request's checks (key, body, rpm limit, fault), latency, statistics (snapshots
and `wait_until`) and reset.
Must not import any other runner module, keep an API key, or use the network beyond
its own listening socket.
"""

from __future__ import annotations

import hashlib
import logging
import random
import secrets
import threading
import time
from array import array
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import SocketAttribute, SocketListener
from anyio.from_thread import BlockingPortal

from runner.simulate.canvas import Canvases
from runner.simulate.faults import (
    DEFAULT_SLOW_DELAY,
    DIRECTIVE,
    Fault,
    FaultRules,
    answer,
    directive_fault,
    parse_rules,
)
from runner.simulate.gemini import (
    GENERATE_PATH,
    KEY_INVALID,
    RELAY_401,
    Answer,
    Target,
    auth_of,
    error_reply,
    json_reply,
    key_digest,
    key_matches,
    model_not_found,
    not_found_page,
)
from runner.simulate.models import DEFAULT_SIZE, EXTRA_MODEL_SPEC, MODELS
from runner.simulate.request import Generate, parse_generate, refusal
from runner.simulate.stats import BodyStats, Counters, Stats, recorder
from runner.simulate.wire import send, serve_connection, wait_for_disconnect

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from types import TracebackType

    from anyio.abc import SocketStream, TaskGroup, TaskStatus
    from anyio.streams.buffered import BufferedByteReceiveStream

    from runner.simulate.models import ModelSpec
    from runner.simulate.wire import Reply, Request

logger = logging.getLogger(__name__)


class SimServer:
    """The simulated API; `start()` serves from a daemon thread, `serve()` in a loop.

    Each generateContent request picks its fault in this order: a `[sim:KIND]`,
    `[sim:KIND*N]` (first N requests of that exact body) or `[sim:KIND retry_after=S
    delay=S size=B]` directive in the prompt; else the first `add_fault` rule that
    fires; else a random kind from `fault_mix` with probability `fault_rate`.
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
        reuse_answers: bool = False,
        record_latencies: bool = False,
    ) -> None:
        self._faults = FaultRules(rate=fault_rate, mix=fault_mix, seed=seed)
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
        self._canvases = Canvases()
        self._thread: threading.Thread | None = None
        self._portal: BlockingPortal | None = None
        self._start_error: BaseException | None = None

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
        """Clear statistics and fault rules, and reseed the random faults."""
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
        starts or ends, or the server is reset. TimeoutError if no such change makes
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
        async with listener, anyio.create_task_group() as tg:
            self._port = listener.extra(SocketAttribute.local_port)
            for sub in listener.listeners:
                assert isinstance(sub, SocketListener)
                tg.start_soon(self._accept_loop, sub, tg)
            task_status.started(self.url)

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
            tg.start_soon(serve_connection, stream, self._respond, _refusal)

    async def _respond(
        self, stream: SocketStream, reader: BufferedByteReceiveStream, req: Request
    ) -> bool:
        """Answer one request; False when the connection must close afterwards."""
        generate = GENERATE_PATH.match(req.path)
        if generate is None:
            other = self._route_other(req)
            return await send(stream, other, keep_alive=req.keep_alive)
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

    def _route_other(self, req: Request) -> Reply:
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
        body_hash = hashlib.sha256(req.body).hexdigest()
        parsed = parse_generate(req.body)
        gen = parsed if isinstance(parsed, Generate) else None
        with self._lock:
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
                )
            body["received"] += 1
            body["auth"] = auth_style
            received = body["received"]

        fault: Fault | None = None
        spec = self._models.get(model)
        if self._key_digest is not None and not key_matches(key, self._key_digest):
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

            if (wait := self._over_rpm()) is not None:
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
                        chosen = self._faults.pick(gen.text)
                if isinstance(chosen, str):
                    kind = "invalid-request"
                    reply = error_reply(400, chosen, "INVALID_ARGUMENT")
                elif chosen is None and self._answers is not None:
                    kind = "ok"
                    reply = await self._answers.reply(
                        (model, version, gen),
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
        )


def _google_reply(body: dict[str, Any]) -> Answer:
    """A Google error body as an answer with its own status code."""
    return json_reply(int(body["error"]["code"]), body)


def _refusal(status: int, message: str) -> Reply:
    """The answer to a request the HTTP layer cannot frame."""
    return error_reply(status, message, "INVALID_ARGUMENT")
