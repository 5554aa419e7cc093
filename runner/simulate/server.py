"""A simulated Gemini generateContent API on loopback, with scripted fault injection.

Owns: a hand-written HTTP/1.1 server on anyio (byte-level control is what lets it drop
a connection mid-body), generated PNG answers, the fault catalogue, request statistics
and `python -m runner.simulate`. Used by `runner submit --simulate`, tests, benchmarks.
Must not import any other runner module, keep an API key, or use the network beyond
its own listening socket.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import colorsys
import hashlib
import hmac
import http
import io
import json
import logging
import math
import random
import re
import secrets
import signal
import struct
import threading
import time
import zlib
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

import anyio
from anyio.abc import SocketAttribute, SocketListener
from anyio.from_thread import BlockingPortal
from anyio.streams.buffered import BufferedByteReceiveStream
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from types import TracebackType

    from anyio.abc import SocketStream, TaskGroup, TaskStatus

logger = logging.getLogger(__name__)

# 1K output sizes of the real model; 2K/4K/512 scale these.
ASPECT_RATIOS: Mapping[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "2:3": (848, 1264),
    "3:2": (1264, 848),
    "3:4": (896, 1200),
    "4:3": (1200, 896),
    "4:5": (928, 1152),
    "5:4": (1152, 928),
    "9:16": (768, 1376),
    "16:9": (1376, 768),
    "21:9": (1584, 672),
    "1:4": (512, 2048),
    "4:1": (2048, 512),
    "1:8": (368, 2896),
    "8:1": (2896, 368),
}
IMAGE_SIZES: Mapping[str, float] = {"512": 0.5, "1K": 1.0, "2K": 2.0, "4K": 4.0}
CANDIDATE_TOKENS: Mapping[str, int] = {"512": 747, "1K": 1120, "2K": 1680, "4K": 2520}
REFERENCE_IMAGE_TOKENS = 258

FAULT_KINDS: tuple[str, ...] = (
    "429",
    "429-day",
    "500",
    "503",
    "502-relay",
    "504",
    "408",
    "401",
    "403",
    "403-balance",
    "400",
    "hang",
    "slow",
    "drop",
    "drop-mid-body",
    "truncated",
    "non-json",
    "bad-base64",
    "huge",
    "no-mime",
    "wrong-mime",
    "blocked-prompt",
    "blocked-finish",
    "text-only",
    "no-image-finish",
    "empty-candidates",
    "relay-markdown",
    "relay-url",
)
# What `fault_rate` draws from when no mix is given: faults a run recovers from (or
# records as unknown), never the ones that stop a whole run.
DEFAULT_FAULT_MIX: tuple[str, ...] = (
    "429",
    "500",
    "503",
    "502-relay",
    "504",
    "drop",
    "text-only",
)
DEFAULT_RETRY_DELAY = 1.0
DEFAULT_SLOW_DELAY = 1.0
DEFAULT_HUGE_SIZE = 64 * 1024 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_HEAD_BYTES = 64 * 1024
# Longer than any sane client keep-alive expiry (httpx: 5 s), so the server never closes
# a pooled connection while the client is about to reuse it.
IDLE_TIMEOUT = 300.0
NON_JSON_BODY = b"<html><body>Bad gateway</body></html>"
BAD_BASE64 = "iVBORw0K!!not~base64!!"


def image_dimensions(
    aspect_ratio: str | None, image_size: str | None = None, *, scale: float = 1.0
) -> tuple[int, int]:
    """Pixel size the simulated model answers with (1:1 and 1K when not given)."""
    width, height = ASPECT_RATIOS[aspect_ratio or "1:1"]
    factor = IMAGE_SIZES[image_size or "1K"] * scale
    return max(8, round(width * factor)), max(8, round(height * factor))


def nearest_aspect_ratio(width: int, height: int) -> str:
    """The supported ratio closest to width:height (what the model does for edits)."""
    target = math.log(width / height)
    return min(ASPECT_RATIOS, key=lambda r: abs(math.log(_ratio_value(r)) - target))


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault rule: `match` is a prompt substring, `times` caps how often it fires."""

    kind: str
    match: str | None = None
    times: int | None = None
    rate: float = 1.0
    retry_after: float | None = None
    delay: float | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(
                f"unknown fault kind {self.kind!r}; use one of {', '.join(FAULT_KINDS)}"
            )
        if self.times is not None and self.times < 0:
            raise ValueError("times must be >= 0")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        for name in ("retry_after", "delay", "size"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """Build a rule from JSON, checking field names and types."""
        allowed = {
            "kind": (str,),
            "match": (str,),
            "times": (int,),
            "rate": (int, float),
            "retry_after": (int, float),
            "delay": (int, float),
            "size": (int,),
        }
        for key, value in data.items():
            if key not in allowed:
                raise ValueError(f"unknown fault field {key!r}")
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, allowed[key])
            ):
                raise ValueError(f"fault field {key!r} has the wrong type")
        if "kind" not in data:
            raise ValueError("a fault needs a 'kind'")
        return cls(**data)


class BodyStats(TypedDict):
    """Per request body (keyed by the sha256 of its raw bytes); never holds a key."""

    received: int
    succeeded: int
    text: str
    aspect_ratio: str | None
    image_size: str | None
    auth: str | None


class Stats(TypedDict):
    """`SimServer.stats()`; over `/_sim/stats` the `by_status` keys become strings.

    `by_kind` keys are fault kinds, "ok", "unauthorized" (wrong or missing key) and
    "invalid-request" (a 400 the request earned). `usage` and `images_sent` count
    answers whose body was written completely and could be parsed.
    """

    requests: int
    connections: int
    in_flight: int
    max_in_flight: int
    by_status: dict[int, int]
    by_kind: dict[str, int]
    usage: dict[str, int]
    images_sent: int
    bodies: dict[str, BodyStats]


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
    ) -> None:
        for kind in fault_mix:
            Fault(kind)  # validates the name
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError("fault_rate must be between 0 and 1")
        if image_scale <= 0:
            raise ValueError("image_scale must be > 0")
        self.latency = latency
        self.latency_jitter = latency_jitter
        self.image_scale = image_scale
        self.fault_rate = fault_rate
        self.fault_mix: tuple[str, ...] = tuple(fault_mix) or DEFAULT_FAULT_MIX
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
        self._key_digest = _digest(api_key) if api_key is not None else None
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._stats = _Counters()
        self._fault_rng = random.Random(seed)
        self._jitter_rng = random.Random(seed + 1)
        self._serial = 0
        self._files: OrderedDict[str, bytes] = OrderedDict()
        self._canvases = _CanvasCache()
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
            self._rules.append(_Rule(fault))

    def reset(self) -> None:
        """Clear statistics and fault rules, and reseed the random faults."""
        with self._lock:
            self._rules.clear()
            # requests still being answered will decrement the new counter
            self._stats = _Counters(in_flight=self._stats.in_flight)
            self._fault_rng.seed(self.seed)
            self._jitter_rng.seed(self.seed + 1)
            self._files.clear()

    def stats(self) -> Stats:
        """A snapshot of the counters, safe to read from any thread."""
        with self._lock:
            return self._stats.snapshot()

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
            tg.start_soon(self._handle_connection, stream)

    async def _handle_connection(self, stream: SocketStream) -> None:
        try:
            async with stream:
                await self._serve_connection(stream)
        except _DISCONNECTS:
            pass
        except Exception:
            logger.exception("simulator connection handler failed")

    async def _serve_connection(self, stream: SocketStream) -> None:
        reader = BufferedByteReceiveStream(stream)
        while True:
            head: bytes | None = None
            try:
                with anyio.move_on_after(IDLE_TIMEOUT):
                    head = await reader.receive_until(b"\r\n\r\n", MAX_HEAD_BYTES)
            except anyio.DelimiterNotFound:
                message = "Request header fields too large."
                reply = _json_reply(
                    431, _google_error(431, message, "INVALID_ARGUMENT")
                )
                await _send(stream, reply, keep_alive=False)
                return
            if head is None:
                return
            request = _parse_head(head)
            if isinstance(request, _Reply):
                await _send(stream, request, keep_alive=False)
                return
            early = _check_framing(request)
            if early is not None:
                await _send(stream, early, keep_alive=False)
                return
            if request.expect_continue and request.content_length:
                await stream.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.body = await reader.receive_exactly(request.content_length)
            if not await self._respond(stream, reader, request):
                return

    async def _respond(
        self, stream: SocketStream, reader: BufferedByteReceiveStream, req: _Request
    ) -> bool:
        """Answer one request; False when the connection must close afterwards."""
        generate = _GENERATE_PATH.match(req.path)
        if generate is None:
            reply = self._route_other(req)
            return await _send(stream, reply, keep_alive=req.keep_alive)
        if req.method != "POST":
            reply = _json_reply(
                405, _google_error(405, "Use POST.", "INVALID_ARGUMENT")
            )
            return await _send(stream, reply, keep_alive=req.keep_alive)
        with self._lock:
            self._stats.in_flight += 1
            self._stats.max_in_flight = max(
                self._stats.max_in_flight, self._stats.in_flight
            )
        try:
            try:
                reply = await self._generate(req, generate.group(1))
            except Exception:
                logger.exception("simulator failed to build an answer")
                reply = _json_reply(
                    500, _google_error(500, "simulator error", "INTERNAL")
                )
            if reply.mode == "hang":
                await _wait_for_disconnect(reader)
                return False
            # Counted before the write: a client that has read the answer must find
            # it in stats(). Taken back if the write fails.
            record = reply.on_sent if reply.mode == "full" else None
            with self._lock:
                stats = self._stats
                if record is not None:
                    record(stats, 1)
            try:
                return await _send(stream, reply, keep_alive=req.keep_alive)
            except BaseException:
                if record is not None:
                    with self._lock:
                        record(stats, -1)
                raise
        finally:
            with self._lock:
                self._stats.in_flight -= 1

    def _route_other(self, req: _Request) -> _Reply:
        if req.path.startswith("/files/"):
            if req.method != "GET":
                return _json_reply(
                    405, _google_error(405, "Use GET.", "INVALID_ARGUMENT")
                )
            with self._lock:
                data = self._files.pop(req.path[len("/files/") :], None)
            if data is None:
                return _json_reply(
                    404, _google_error(404, "No such file.", "NOT_FOUND")
                )
            return _Reply(200, data, content_type="image/png")
        if req.path == "/_sim/stats" and req.method == "GET":
            return _json_reply(200, self.stats())
        if req.path == "/_sim/reset" and req.method == "POST":
            self.reset()
            return _json_reply(200, {"ok": True})
        if req.path == "/_sim/faults" and req.method == "POST":
            try:
                payload = json.loads(req.body)
                items = payload if isinstance(payload, list) else [payload]
                faults = [Fault.from_dict(_as_mapping(item)) for item in items]
            except (ValueError, TypeError) as exc:
                return _json_reply(
                    400, _google_error(400, str(exc), "INVALID_ARGUMENT")
                )
            for fault in faults:
                self.add_fault(fault)
            with self._lock:
                count = len(self._rules)
            return _json_reply(200, {"ok": True, "rules": count})
        return _json_reply(
            404,
            _google_error(404, f"No route for {req.method} {req.path}.", "NOT_FOUND"),
        )

    # -- generateContent ----------------------------------------------------------

    async def _generate(self, req: _Request, model: str) -> _Reply:
        auth_style, key = _auth_of(req.headers)
        body_hash = hashlib.sha256(req.body).hexdigest()
        parsed = _parse_generate(req.body)
        gen = parsed if isinstance(parsed, _Generate) else None
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
        if self._key_digest is not None and (
            key is None or not hmac.compare_digest(_digest(key), self._key_digest)
        ):
            kind, reply = "unauthorized", _json_reply(401, _RELAY_401)
        elif isinstance(parsed, str):
            kind = "invalid-request"
            reply = _json_reply(400, _google_error(400, parsed, "INVALID_ARGUMENT"))
        elif (wait := self._over_rpm()) is not None:
            assert gen is not None
            kind = "rate-limited"
            fault = Fault("429", retry_after=wait)
            reply = await self._answer(gen, model, fault)
        else:
            assert gen is not None
            chosen = self._choose_fault(gen, received)
            if isinstance(chosen, str):
                kind = "invalid-request"
                reply = _json_reply(400, _google_error(400, chosen, "INVALID_ARGUMENT"))
            else:
                fault = chosen
                kind = fault.kind if fault else "ok"
                reply = await self._answer(gen, model, fault)
        with self._lock:
            self._stats.by_kind[kind] = self._stats.by_kind.get(kind, 0) + 1
            if reply.mode in ("full", "half"):
                status = self._stats.by_status
                status[reply.status] = status.get(reply.status, 0) + 1
        reply.on_sent = _on_sent(reply, body_hash)

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
        if self.latency_jitter <= 0:
            return self.latency
        with self._lock:
            jitter = self._jitter_rng.uniform(-self.latency_jitter, self.latency_jitter)
        return max(0.0, self.latency + jitter)

    def _choose_fault(self, gen: _Generate, received: int) -> Fault | str | None:
        """The fault for this request, None for a normal answer, or an error message."""
        directive = _DIRECTIVE.search(gen.text)
        if directive is not None:
            try:
                fault = _directive_fault(directive)
            except ValueError as exc:
                return f"[sim:...] directive: {exc}"
            limit = directive.group("times")
            if limit is not None and received > int(limit):
                return None
            return fault
        with self._lock:
            for rule in self._rules:
                rule_fault = rule.fault
                if rule_fault.match is not None and rule_fault.match not in gen.text:
                    continue
                if rule_fault.times is not None and rule.fired >= rule_fault.times:
                    continue
                if (
                    rule_fault.rate < 1.0
                    and self._fault_rng.random() >= rule_fault.rate
                ):
                    continue
                rule.fired += 1
                return rule_fault
            if self.fault_rate > 0 and self._fault_rng.random() < self.fault_rate:
                return Fault(self._fault_rng.choice(self.fault_mix))
        return None

    async def _answer(self, gen: _Generate, model: str, fault: Fault | None) -> _Reply:
        kind = fault.kind if fault is not None else "ok"
        error = _error_reply(kind, fault)
        if error is not None:
            return error
        if kind in ("hang", "drop"):
            return _Reply(0, b"", mode=kind)
        usage = _usage(gen)
        base: dict[str, Any] = {"modelVersion": model, "responseId": _response_id()}
        if kind in _NO_IMAGE_KINDS:
            return _json_reply(200, {**_no_image_body(kind, gen), **base})
        png = await self._png(gen)
        b64 = base64.b64encode(png).decode("ascii")
        if kind in ("relay-markdown", "relay-url"):
            if kind == "relay-markdown":
                link = f"data:image/png;base64,{b64}"
            else:
                name = f"{secrets.token_hex(8)}.png"
                with self._lock:
                    self._files[name] = png
                    while len(self._files) > 256:
                        self._files.popitem(last=False)
                link = f"{self.url}/files/{name}"
            parts: list[dict[str, Any]] = [{"text": f"![image]({link})"}]
            return _json_reply(200, _success_body(parts, usage, base), images=1)
        inline: dict[str, Any] = {"mimeType": "image/png", "data": b64}
        if kind == "bad-base64":
            inline["data"] = BAD_BASE64
        elif kind == "no-mime":
            del inline["mimeType"]
        elif kind == "wrong-mime":
            inline["mimeType"] = "image/jpeg"
        parts = [
            {"text": f"Planning the composition for: {gen.text[:60]}", "thought": True}
        ]
        if "TEXT" in gen.modalities:
            parts.append({"text": "Here is your image."})
        parts.append({"inlineData": inline})
        body = _success_body(parts, usage, base)
        images = 0 if kind == "bad-base64" else 1
        if kind == "huge":
            target = (
                fault.size if fault and fault.size is not None else DEFAULT_HUGE_SIZE
            )
            size = len(_dumps(body))
            pad = max(0, target - size - len(',{"text":""}'))
            parts.insert(1, {"text": "x" * pad})
        reply = _json_reply(200, body, images=images)
        if kind == "truncated":
            reply.body = reply.body[: len(reply.body) // 2]
            reply.usage = None
            reply.images = 0
        elif kind == "drop-mid-body":
            reply.mode = "half"
        return reply

    async def _png(self, gen: _Generate) -> bytes:
        return _pad_png(await self._render(gen), self.image_pad_bytes)

    async def _render(self, gen: _Generate) -> bytes:
        ratio = gen.aspect_ratio
        if ratio is None and gen.reference_size is not None:
            ratio = nearest_aspect_ratio(*gen.reference_size)
        width, height = image_dimensions(ratio, gen.image_size, scale=self.image_scale)
        with self._lock:
            self._serial += 1
            serial = self._serial
        label = (
            f"#{serial}  {ratio or '1:1'} {gen.image_size or '1K'}  {width}x{height}"
        )
        args = (gen.text, width, height, label)
        if width * height > 300_000:
            # big images: keep the event loop free for the other connections
            return await anyio.to_thread.run_sync(self._canvases.render, *args)
        return self._canvases.render(*args)


_PAD_CACHE: dict[int, bytes] = {}


def _pad_png(png: bytes, pad: int) -> bytes:
    """`png` with a private ancillary chunk of `pad` random bytes before IEND:
    still a valid PNG (decoders skip it), as large as a real 4K answer."""
    if pad <= 0:
        return png
    data = _PAD_CACHE.get(pad)
    if data is None:
        data = _PAD_CACHE[pad] = random.Random(pad).randbytes(pad)
    kind = b"prVt"  # ancillary, private, safe to copy
    chunk = (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )
    iend = png.rfind(b"IEND") - 4
    return png[:iend] + chunk + png[iend:]


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m runner.simulate`: serve until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m runner.simulate",
        description="Simulated Gemini generateContent API on loopback.",
        epilog="example: python -m runner.simulate --port 8765 --fault-rate 0.1",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds")
    parser.add_argument("--latency-jitter", type=float, default=0.0, help="seconds")
    parser.add_argument("--image-scale", type=float, default=1.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument(
        "--fault-mix",
        default=",".join(DEFAULT_FAULT_MIX),
        help=f"comma-separated kinds out of: {', '.join(FAULT_KINDS)}",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--api-key", default=None, help="require this key (401 else)")
    parser.add_argument(
        "--rpm-limit",
        type=float,
        default=None,
        help="answer 429 beyond this many requests in the trailing minute",
    )
    parser.add_argument(
        "--image-pad-bytes",
        type=int,
        default=0,
        help="pad each PNG to about this many more bytes (realistic 4K sizes)",
    )
    args = parser.parse_args(argv)
    try:
        server = SimServer(
            latency=args.latency,
            latency_jitter=args.latency_jitter,
            image_scale=args.image_scale,
            api_key=args.api_key,
            fault_rate=args.fault_rate,
            rpm_limit=args.rpm_limit,
            image_pad_bytes=args.image_pad_bytes,
            fault_mix=[k for k in args.fault_mix.split(",") if k],
            seed=args.seed,
            host=args.host,
            port=args.port,
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        anyio.run(_serve_until_signal, server)
    except KeyboardInterrupt:
        pass  # SIGINT before the signal receiver was installed


async def _serve_until_signal(server: SimServer) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as tg:
            url = await tg.start(server.serve)
            print(f"listening on {url}", flush=True)  # noqa: T201
            async for _ in signals:
                tg.cancel_scope.cancel()
                break


# -- private helpers --------------------------------------------------------------

_DISCONNECTS = (
    anyio.EndOfStream,
    anyio.IncompleteRead,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    ConnectionError,
    TimeoutError,
)
_GENERATE_PATH = re.compile(r"^/v1(?:beta|alpha)?/models/([^/:]+):generateContent$")
_DIRECTIVE = re.compile(
    r"\[sim:(?P<kind>[a-z0-9-]+)(?:\*(?P<times>\d+))?"
    r"(?P<params>(?:\s+[a-z_]+=[0-9.]+)*)\s*\]"
)
_NO_IMAGE_KINDS = frozenset(
    {
        "blocked-prompt",
        "blocked-finish",
        "text-only",
        "no-image-finish",
        "empty-candidates",
    }
)
_JSON = "application/json; charset=UTF-8"
_RELAY_401 = {
    "error": {
        "message": "invalid token",
        "type": "new_api_error",
        "param": "",
        "code": "invalid_api_key",
    }
}
_RELAY_403_BALANCE = {
    "error": {
        "message": "user quota is not enough",
        "type": "new_api_error",
        "param": "",
        "code": "insufficient_user_quota",
    }
}
_RELAY_502 = {
    "error": {
        "message": "bad response status code 502",
        "type": "upstream_error",
        "param": "",
        "code": "bad_response_status_code",
    }
}


@dataclass(slots=True)
class _Rule:
    fault: Fault
    fired: int = 0


@dataclass(slots=True)
class _Counters:
    requests: int = 0
    connections: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)
    usage: dict[str, int] = field(
        default_factory=lambda: {
            "promptTokenCount": 0,
            "candidatesTokenCount": 0,
            "totalTokenCount": 0,
        }
    )
    images_sent: int = 0
    bodies: dict[str, BodyStats] = field(default_factory=dict)

    def snapshot(self) -> Stats:
        return Stats(
            requests=self.requests,
            connections=self.connections,
            in_flight=self.in_flight,
            max_in_flight=self.max_in_flight,
            by_status=dict(self.by_status),
            by_kind=dict(self.by_kind),
            usage=dict(self.usage),
            images_sent=self.images_sent,
            bodies={k: BodyStats(**v) for k, v in self.bodies.items()},
        )


@dataclass(slots=True)
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    keep_alive: bool
    content_length: int = 0
    expect_continue: bool = False
    body: bytes = b""


@dataclass(slots=True)
class _Reply:
    status: int
    body: bytes
    content_type: str = _JSON
    headers: tuple[tuple[str, str], ...] = ()
    mode: str = "full"  # full | half (drop mid-body) | drop | hang
    usage: Mapping[str, Any] | None = None  # counted only once sent completely
    images: int = 0
    on_sent: Callable[[_Counters, int], None] | None = None


@dataclass(frozen=True, slots=True)
class _Generate:
    text: str
    reference_count: int
    reference_size: tuple[int, int] | None  # first reference image, if any
    aspect_ratio: str | None
    image_size: str | None
    modalities: tuple[str, ...]


def _on_sent(reply: _Reply, body_hash: str) -> Callable[[_Counters, int], None]:
    def record(stats: _Counters, sign: int) -> None:
        if reply.usage is not None:
            for name in stats.usage:
                stats.usage[name] += sign * int(reply.usage.get(name, 0))
        if reply.images:
            stats.images_sent += sign * reply.images
            body = stats.bodies.get(body_hash)  # absent after a reset mid-request
            if body is not None:
                body["succeeded"] += sign

    return record


def _parse_head(head: bytes) -> _Request | _Reply:
    lines = head.decode("latin-1").lstrip("\r\n").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return _json_reply(
            400, _google_error(400, "Malformed request line.", "INVALID_ARGUMENT")
        )
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            return _json_reply(
                400, _google_error(400, "Malformed header.", "INVALID_ARGUMENT")
            )
        headers[name.lower()] = value.strip()
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    if version == "HTTP/1.1":
        keep_alive = "close" not in tokens
    else:
        keep_alive = "keep-alive" in tokens
    return _Request(
        method=method,
        path=target.split("?", 1)[0],
        headers=headers,
        keep_alive=keep_alive,
        expect_continue=headers.get("expect", "").lower() == "100-continue",
    )


def _check_framing(req: _Request) -> _Reply | None:
    """Reject bodies this server cannot frame; sets `content_length` otherwise."""
    if "transfer-encoding" in req.headers:
        message = "Chunked request bodies are not supported; send Content-Length."
        return _json_reply(411, _google_error(411, message, "INVALID_ARGUMENT"))
    raw = req.headers.get("content-length")
    if raw is None:
        if req.method == "POST":
            message = "A POST needs a Content-Length header."
            return _json_reply(411, _google_error(411, message, "INVALID_ARGUMENT"))
        return None
    if not raw.isdigit():
        message = "Invalid Content-Length."
        return _json_reply(400, _google_error(400, message, "INVALID_ARGUMENT"))
    req.content_length = int(raw)
    if req.content_length > MAX_BODY_BYTES:
        message = f"Request body over {MAX_BODY_BYTES} bytes."
        return _json_reply(413, _google_error(413, message, "INVALID_ARGUMENT"))
    return None


async def _send(stream: SocketStream, reply: _Reply, *, keep_alive: bool) -> bool:
    """Write `reply` as `mode` says; True if the connection stays open."""
    if reply.mode == "drop":
        return False
    keep_alive = keep_alive and reply.mode == "full"
    reason = http.HTTPStatus(reply.status).phrase
    lines = [
        f"HTTP/1.1 {reply.status} {reason}",
        f"Content-Type: {reply.content_type}",
        f"Content-Length: {len(reply.body)}",
        "Server: runner-simulate",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
    ]
    lines += [f"{name}: {value}" for name, value in reply.headers]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    body = reply.body[: len(reply.body) // 2] if reply.mode == "half" else reply.body
    if len(body) < 1 << 20:
        await stream.send(head + body)
    else:
        await stream.send(head)
        await stream.send(body)
    return keep_alive


async def _wait_for_disconnect(reader: BufferedByteReceiveStream) -> None:
    try:
        while True:
            await reader.receive()
    except _DISCONNECTS:
        pass


def _json_reply(
    status: int,
    payload: Any,
    *,
    headers: tuple[tuple[str, str], ...] = (),
    images: int = 0,
) -> _Reply:
    usage = payload.get("usageMetadata") if isinstance(payload, dict) else None
    return _Reply(status, _dumps(payload), headers=headers, usage=usage, images=images)


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _google_error(
    code: int, message: str, status: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def _retry_info(seconds: float) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": f"{seconds:g}s",
    }


_FIXED_ERRORS: Mapping[str, tuple[int, dict[str, Any]]] = {
    "500": (
        500,
        _google_error(
            500,
            "An internal error has occurred. Please retry or report in "
            "https://developers.generativeai.google/guide/troubleshooting",
            "INTERNAL",
        ),
    ),
    "502-relay": (502, _RELAY_502),
    "504": (
        504,
        _google_error(
            504,
            "Deadline expired before operation could complete.",
            "DEADLINE_EXCEEDED",
        ),
    ),
    "408": (408, _google_error(408, "Request timed out.", "DEADLINE_EXCEEDED")),
    "401": (401, _RELAY_401),
    "403": (
        403,
        _google_error(
            403,
            "Method doesn't allow unregistered callers (callers without "
            "established identity). Please use API Key or other form of API "
            "consumer identity to call this API.",
            "PERMISSION_DENIED",
        ),
    ),
    "403-balance": (403, _RELAY_403_BALANCE),
    "400": (
        400,
        _google_error(
            400,
            'Invalid JSON payload received. Unknown name "aspect" at '
            "'generation_config.image_config': Cannot find field.",
            "INVALID_ARGUMENT",
        ),
    ),
}


def _error_reply(kind: str, fault: Fault | None) -> _Reply | None:
    retry_after = fault.retry_after if fault is not None else None
    if kind in ("429", "429-day"):
        period = "PerDay" if kind == "429-day" else "PerMinute"
        quota = {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/"
                    "generate_content_free_tier_requests",
                    "quotaId": f"GenerateRequests{period}PerProjectPerModel-FreeTier",
                }
            ],
        }
        delay = retry_after if retry_after is not None else DEFAULT_RETRY_DELAY
        message = (
            "You exceeded your current quota, please check your plan and billing "
            "details."
        )
        body = _google_error(
            429, message, "RESOURCE_EXHAUSTED", [quota, _retry_info(delay)]
        )
        return _json_reply(429, body)
    if kind == "503":
        message = "The model is overloaded. Please try again later."
        if retry_after is None:
            return _json_reply(503, _google_error(503, message, "UNAVAILABLE"))
        body = _google_error(503, message, "UNAVAILABLE", [_retry_info(retry_after)])
        return _json_reply(503, body, headers=(("Retry-After", f"{retry_after:g}"),))
    if kind in _FIXED_ERRORS:
        status, fixed = _FIXED_ERRORS[kind]
        return _json_reply(status, fixed)
    if kind == "non-json":
        return _Reply(200, NON_JSON_BODY, content_type="text/html; charset=utf-8")
    return None


def _directive_fault(match: re.Match[str]) -> Fault:
    params: dict[str, float] = {}
    for item in match.group("params").split():
        name, _, value = item.partition("=")
        if name not in ("retry_after", "delay", "size"):
            raise ValueError(f"unknown parameter {name!r}")
        params[name] = float(value)
    size = params.get("size")
    return Fault(
        match.group("kind"),
        retry_after=params.get("retry_after"),
        delay=params.get("delay"),
        size=int(size) if size is not None else None,
    )


def _auth_of(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        return "bearer", token.strip() if scheme.lower() == "bearer" else None
    goog = headers.get("x-goog-api-key")
    if goog is not None:
        return "goog", goog.strip()
    return None, None


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _as_mapping(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("a fault rule must be a JSON object")
    return value


def _parse_generate(raw: bytes) -> _Generate | str:
    """The fields the simulator needs, or the 400 message a real API would give."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"Invalid JSON payload received. {exc}"
    if not isinstance(body, dict) or not isinstance(body.get("contents"), list):
        return "* GenerateContentRequest.contents: contents is not specified"
    texts: list[str] = []
    references: list[bytes] = []
    for content in body["contents"]:
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list):
            return "* GenerateContentRequest.contents.parts: parts is not specified"
        for part in parts:
            if not isinstance(part, dict):
                return "Invalid value at 'contents.parts': expected an object"
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            inline = _either(part, "inline_data", "inlineData")
            if isinstance(inline, dict):
                try:
                    references.append(base64.b64decode(inline.get("data", "")))
                except (binascii.Error, ValueError, TypeError):
                    return "Base64 decoding failed for an inline image."
    config = _either(body, "generationConfig", "generation_config") or {}
    image_config = _either(config, "imageConfig", "image_config") or {}
    ratio = _either(image_config, "aspectRatio", "aspect_ratio")
    size = _either(image_config, "imageSize", "image_size")
    if ratio is not None and ratio not in ASPECT_RATIOS:
        return f"Unsupported aspect ratio {ratio!r}."
    if size is not None and size not in IMAGE_SIZES:
        return f"Unsupported image size {size!r}."
    reference_size = None
    if references:
        try:
            with Image.open(io.BytesIO(references[0])) as first:
                reference_size = first.size
        except (OSError, ValueError, Image.DecompressionBombError):
            return "Unable to process input image. Please retry or report."
    modalities = _either(config, "responseModalities", "response_modalities") or []
    return _Generate(
        text="\n".join(texts),
        reference_count=len(references),
        reference_size=reference_size,
        aspect_ratio=ratio,
        image_size=size,
        modalities=tuple(str(m).upper() for m in modalities),
    )


def _either(mapping: Any, camel: str, snake: str) -> Any:
    if not isinstance(mapping, dict):
        return None
    return mapping[camel] if camel in mapping else mapping.get(snake)


def _usage(gen: _Generate) -> dict[str, Any]:
    text_tokens = len(gen.text) // 4 + 1
    image_tokens = REFERENCE_IMAGE_TOKENS * gen.reference_count
    prompt = text_tokens + image_tokens
    candidates = CANDIDATE_TOKENS[gen.image_size or "1K"]
    thoughts = 64 + hashlib.sha256(gen.text.encode()).digest()[0] % 128
    details = [{"modality": "TEXT", "tokenCount": text_tokens}]
    if image_tokens:
        details.append({"modality": "IMAGE", "tokenCount": image_tokens})
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts,
        "thoughtsTokenCount": thoughts,
        "promptTokensDetails": details,
        "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": candidates}],
    }


def _success_body(
    parts: list[dict[str, Any]], usage: dict[str, Any], base: dict[str, Any]
) -> dict[str, Any]:
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": parts},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": usage,
        **base,
    }


def _no_image_body(kind: str, gen: _Generate) -> dict[str, Any]:
    prompt = _usage(gen)["promptTokenCount"]
    prompt_only = {"promptTokenCount": prompt, "totalTokenCount": prompt}
    if kind == "blocked-prompt":
        return {
            "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
            "usageMetadata": prompt_only,
        }
    if kind == "blocked-finish":
        return {
            "candidates": [{"finishReason": "IMAGE_SAFETY", "index": 0}],
            "usageMetadata": prompt_only,
        }
    if kind == "no-image-finish":
        return {
            "candidates": [{"finishReason": "NO_IMAGE", "index": 0}],
            "usageMetadata": prompt_only,
        }
    if kind == "empty-candidates":
        return {"candidates": [], "usageMetadata": prompt_only}
    text = f"I can describe that scene instead: {gen.text[:80]}"
    answer_tokens = len(text) // 4 + 1
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": text}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": prompt,
            "candidatesTokenCount": answer_tokens,
            "totalTokenCount": prompt + answer_tokens,
        },
    }


def _response_id() -> str:
    return secrets.token_urlsafe(16)


def _ratio_value(ratio: str) -> float:
    width, _, height = ratio.partition(":")
    return int(width) / int(height)


# -- images -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Canvas:
    """A rendered prompt with its top part already deflated.

    Each answer redraws only the bottom label strip and deflates it from a copy of the
    compressor state, so answers differ while a 4K image costs a fraction of an encode.
    """

    width: int
    height: int
    head: bytes  # PNG signature + IHDR
    compressor: zlib._Compress  # state after the top rows
    top_data: bytes  # deflate output of the top rows so far
    strip: Image.Image
    font_size: int
    ink: tuple[int, int, int]
    margin: int

    @property
    def cost(self) -> int:
        return len(self.top_data) + self.width * self.strip.height * 3 + 300_000


class _CanvasCache:
    """Thread-safe LRU of canvases bounded by an estimate of their memory.

    A canvas is built once even when many requests for it arrive together: sixteen
    parallel 4K builds would cost seconds where one costs a few hundred milliseconds.
    """

    budget = 64 * 1024 * 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, int, int], _Canvas] = OrderedDict()
        self._building: dict[tuple[str, int, int], threading.Lock] = {}
        self._used = 0

    def render(self, text: str, width: int, height: int, label: str) -> bytes:
        return _finish_png(self._canvas((text, width, height)), label)

    def _canvas(self, key: tuple[str, int, int]) -> _Canvas:
        with self._lock:
            canvas = self._cached(key)
            if canvas is not None:
                return canvas
            building = self._building.setdefault(key, threading.Lock())
        with building:
            with self._lock:
                canvas = self._cached(key)
            if canvas is not None:
                return canvas
            canvas = _make_canvas(*key)
            with self._lock:
                self._building.pop(key, None)
                self._items[key] = canvas
                self._used += canvas.cost
                while self._used > self.budget and len(self._items) > 1:
                    _, old = self._items.popitem(last=False)
                    self._used -= old.cost
            return canvas

    def _cached(self, key: tuple[str, int, int]) -> _Canvas | None:
        canvas = self._items.get(key)
        if canvas is not None:
            self._items.move_to_end(key)
        return canvas


def _make_canvas(text: str, width: int, height: int) -> _Canvas:
    digest = hashlib.sha256(text.encode()).digest()
    hue = digest[0] / 255
    saturation = 0.35 + digest[1] / 255 * 0.35
    value = 0.45 + digest[2] / 255 * 0.4
    background = _rgb(colorsys.hsv_to_rgb(hue, saturation, value))
    luminance = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
    ink = (20, 20, 20) if luminance > 140 else (245, 245, 245)
    band = _rgb(colorsys.hsv_to_rgb(hue, saturation, value * 0.7))
    font_size = max(8, min(width, height) // 14)
    font = _font(font_size)
    strip_height = min(height, max(8, font_size + font_size // 2))
    strip_y = height - strip_height

    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    margin = max(2, font_size // 2)
    draw.rectangle((0, strip_y, width, height), fill=band)
    line_height = font_size + font_size // 4
    max_lines = max(0, (strip_y - margin) // line_height)
    lines = _wrap(text, font, width - 2 * margin, max_lines)
    top = max(margin, (strip_y - len(lines) * line_height) // 2)
    for index, line in enumerate(lines):
        draw.text((margin, top + index * line_height), line, font=font, fill=ink)

    level = 6 if width * height <= 512 * 512 else 1
    compressor = zlib.compressobj(level)
    top_data = compressor.compress(_scanlines(image.crop((0, 0, width, strip_y))))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return _Canvas(
        width=width,
        height=height,
        head=b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr),
        compressor=compressor,
        top_data=top_data,
        strip=image.crop((0, strip_y, width, height)),
        font_size=font_size,
        ink=ink,
        margin=margin,
    )


def _finish_png(canvas: _Canvas, label: str) -> bytes:
    strip = canvas.strip.copy()
    position = (canvas.margin, canvas.margin // 2)
    font = _font(canvas.font_size)
    ImageDraw.Draw(strip).text(position, label, font=font, fill=canvas.ink)
    compressor = canvas.compressor.copy()
    data = canvas.top_data + compressor.compress(_scanlines(strip)) + compressor.flush()
    return canvas.head + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def _scanlines(image: Image.Image) -> bytes:
    """Raw RGB rows each prefixed with PNG filter type 0 (None)."""
    raw = image.tobytes()
    stride = image.width * 3
    if not raw:
        return b""
    return b"".join(
        b"\x00" + raw[start : start + stride] for start in range(0, len(raw), stride)
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _wrap(
    text: str,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    width: int,
    max_lines: int,
) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}".strip()
            if font.getlength(candidate) <= width:
                current = candidate
                continue
            if current:
                lines.append(current)
            while font.getlength(word) > width and len(word) > 1:
                cut = len(word) - 1
                while cut > 1 and font.getlength(word[:cut]) > width:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            current = word
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        if lines:
            lines[-1] = lines[-1][:-1] + "…" if lines[-1] else "…"
    return lines


# Per thread: canvases are drawn both on the event loop and in worker threads, and a
# FreeType face is not safe to share between threads.
_FONTS = threading.local()


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    fonts: dict[int, ImageFont.FreeTypeFont | ImageFont.ImageFont]
    fonts = _FONTS.__dict__.setdefault("by_size", {})
    font = fonts.get(size)
    if font is None:
        # load_default(size) needs FreeType; the bitmap fallback is still readable
        font = fonts[size] = ImageFont.load_default(size=size)
    return font


def _rgb(values: tuple[float, float, float]) -> tuple[int, int, int]:
    red, green, blue = (round(v * 255) for v in values)
    return red, green, blue
