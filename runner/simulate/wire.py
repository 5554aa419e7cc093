"""HTTP/1.1 on an anyio byte stream, at the byte level the simulator's faults need.

Owns: reading request heads and Content-Length bodies, refusing what it cannot frame,
writing a reply whole, cut in half or not at all, noticing a client that left, and
closing idle keep-alive connections. Must not know Gemini, faults or statistics: the
answer to a request and the body of a refusal come from the caller.
"""

from __future__ import annotations

import http
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.abc import SocketStream

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_HEAD_BYTES = 64 * 1024
# Longer than any sane client keep-alive expiry (httpx: 5 s), so the server never closes
# a pooled connection while the client is about to reuse it.
IDLE_TIMEOUT = 300.0
JSON = "application/json; charset=UTF-8"
# What a client leaving looks like from the server's side of the socket.
DISCONNECTS = (
    anyio.EndOfStream,
    anyio.IncompleteRead,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    ConnectionError,
    TimeoutError,
)


@dataclass(slots=True)
class Request:
    """One request: head fields, then its body once read."""

    method: str
    path: str
    headers: dict[str, str]
    keep_alive: bool
    content_length: int = 0
    expect_continue: bool = False
    body: bytes = b""


@dataclass(slots=True)
class Reply:
    """A reply and how to deliver it."""

    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()
    mode: str = "full"  # full | half (drop mid-body) | drop | hang


if TYPE_CHECKING:
    from typing import TypeAlias

    # Answers one framed request; False when the connection must close afterwards.
    Respond: TypeAlias = Callable[
        [SocketStream, BufferedByteReceiveStream, Request], Awaitable[bool]
    ]
    # The reply to a request this module refuses: (status, message) -> reply.
    Refuse: TypeAlias = Callable[[int, str], Reply]


async def serve_connection(
    stream: SocketStream, respond: Respond, refuse: Refuse
) -> None:
    """Serve requests on `stream` until either side closes it; then close it."""
    try:
        async with stream:
            await _serve(stream, respond, refuse)
    except DISCONNECTS:
        pass
    except Exception:
        logger.exception("simulator connection handler failed")


async def send(stream: SocketStream, reply: Reply, *, keep_alive: bool) -> bool:
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


async def wait_for_disconnect(reader: BufferedByteReceiveStream) -> None:
    """Return once the client has closed its side (what a hanging answer waits for)."""
    try:
        while True:
            await reader.receive()
    except DISCONNECTS:
        pass


# -- private helpers --------------------------------------------------------------


class _Refused(Exception):
    """A request this server cannot frame; the connection closes after the reply."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def _serve(stream: SocketStream, respond: Respond, refuse: Refuse) -> None:
    reader = BufferedByteReceiveStream(stream)
    while True:
        head: bytes | None = None
        try:
            with anyio.move_on_after(IDLE_TIMEOUT):
                head = await reader.receive_until(b"\r\n\r\n", MAX_HEAD_BYTES)
        except anyio.DelimiterNotFound:
            reply = refuse(431, "Request header fields too large.")
            await send(stream, reply, keep_alive=False)
            return
        if head is None:
            return
        try:
            request = _parse_head(head)
            _check_framing(request)
        except _Refused as refused:
            reply = refuse(refused.status, refused.message)
            await send(stream, reply, keep_alive=False)
            return
        if request.expect_continue and request.content_length:
            await stream.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.body = await reader.receive_exactly(request.content_length)
        if not await respond(stream, reader, request):
            return


def _parse_head(head: bytes) -> Request:
    lines = head.decode("latin-1").lstrip("\r\n").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _Refused(400, "Malformed request line.")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _Refused(400, "Malformed header.")
        headers[name.lower()] = value.strip()
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    if version == "HTTP/1.1":
        keep_alive = "close" not in tokens
    else:
        keep_alive = "keep-alive" in tokens
    return Request(
        method=method,
        path=target.split("?", 1)[0],
        headers=headers,
        keep_alive=keep_alive,
        expect_continue=headers.get("expect", "").lower() == "100-continue",
    )


def _check_framing(req: Request) -> None:
    """Refuse bodies this server cannot frame; sets `content_length` otherwise."""
    if "transfer-encoding" in req.headers:
        raise _Refused(
            411, "Chunked request bodies are not supported; send Content-Length."
        )
    raw = req.headers.get("content-length")
    if raw is None:
        if req.method == "POST":
            raise _Refused(411, "A POST needs a Content-Length header.")
        return
    if not raw.isdigit():
        raise _Refused(400, "Invalid Content-Length.")
    req.content_length = int(raw)
    if req.content_length > MAX_BODY_BYTES:
        raise _Refused(413, f"Request body over {MAX_BODY_BYTES} bytes.")
