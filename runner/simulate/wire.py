"""HTTP/1.1 on an anyio byte stream, at the byte level the simulator's faults need.

Owns: reading request heads and Content-Length bodies (or, for the routes a caller
names, handing the body over unread, Content-Length or chunked, to be streamed),
refusing what it cannot frame, writing a reply whole, cut in half or not at all, from
memory or streamed from files, noticing a client that left, and closing idle
keep-alive connections. Must not know Gemini, faults or statistics: the answer to a
request and the body of a refusal come from the caller.
"""

from __future__ import annotations

import http
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from anyio.abc import SocketStream

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024
# What a streamed body (an upload) may be: the Files API's limit per file, 2 GB
# (ai.google.dev/gemini-api/docs/files, "Usage info").
MAX_STREAMED_BYTES = 2 * 1024 * 1024 * 1024
MAX_HEAD_BYTES = 64 * 1024
# Read and write streamed bodies in pieces of this size.
PIECE = 1024 * 1024
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
    query: str = ""  # what follows "?" in the target, undecoded
    content_length: int = 0
    chunked: bool = False  # Transfer-Encoding: chunked (streamed bodies only)
    expect_continue: bool = False
    body: bytes = b""
    streamed: bool = False  # the body is left unread for `body_pieces`
    unread: bool = False  # a streamed body not read to its end yet


@dataclass(frozen=True, slots=True)
class FileSlice:
    """The first `length` bytes of a file as part of a body; with `newline`, each
    b"\\n" in them is sent as `newline` instead (same length), which joins a file of
    JSON lines into a JSON array's items."""

    path: Path
    length: int
    newline: bytes | None = None

    def __post_init__(self) -> None:
        if self.newline is not None and len(self.newline) != 1:
            raise ValueError("newline must be one byte")


@dataclass(frozen=True, slots=True)
class Body:
    """A reply body made of bytes and file slices, sent without being held whole."""

    parts: tuple[bytes | FileSlice, ...] = field(default_factory=tuple)

    @property
    def length(self) -> int:
        return sum(len(p) if isinstance(p, bytes) else p.length for p in self.parts)

    async def pieces(self) -> AsyncIterator[bytes]:
        """The body in pieces of at most about PIECE bytes."""
        for part in self.parts:
            if isinstance(part, bytes):
                if part:
                    yield part
                continue
            left = part.length
            async with await anyio.open_file(part.path, "rb") as file:
                while left > 0:
                    piece = await file.read(min(PIECE, left))
                    if not piece:
                        raise EOFError(f"{part.path} is shorter than {part.length}")
                    left -= len(piece)
                    if part.newline is not None:
                        piece = piece.replace(b"\n", part.newline)
                    yield piece


@dataclass(slots=True)
class Reply:
    """A reply and how to deliver it."""

    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()
    mode: str = "full"  # full | half (drop mid-body) | drop | hang
    streamed: Body | None = None  # sent instead of `body` when set


if TYPE_CHECKING:
    from typing import TypeAlias

    # Answers one framed request; False when the connection must close afterwards.
    Respond: TypeAlias = Callable[
        [SocketStream, BufferedByteReceiveStream, Request], Awaitable[bool]
    ]
    # The reply to a request this module refuses: (status, message) -> reply.
    Refuse: TypeAlias = Callable[[int, str], Reply]
    # Whether a request's body is left unread for the responder to stream.
    Streams: TypeAlias = Callable[[Request], bool]


async def serve_connection(
    stream: SocketStream,
    respond: Respond,
    refuse: Refuse,
    streams: Streams | None = None,
) -> None:
    """Serve requests on `stream` until either side closes it; then close it.

    A request `streams` picks keeps its body unread: the responder reads it with
    `body_pieces` (Content-Length up to MAX_STREAMED_BYTES, or chunked).
    """
    try:
        async with stream:
            await _serve(stream, respond, refuse, streams)
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
    streamed = reply.streamed
    length = streamed.length if streamed is not None else len(reply.body)
    lines = [
        f"HTTP/1.1 {reply.status} {reason}",
        f"Content-Type: {reply.content_type}",
        f"Content-Length: {length}",
        "Server: runner-simulate",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
    ]
    lines += [f"{name}: {value}" for name, value in reply.headers]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if streamed is not None:
        await stream.send(head)
        left = length // 2 if reply.mode == "half" else length
        async for piece in streamed.pieces():
            if left <= 0:
                break
            await stream.send(piece[:left])
            left -= len(piece)
        return keep_alive
    body = reply.body[: len(reply.body) // 2] if reply.mode == "half" else reply.body
    if len(body) < 1 << 20:
        await stream.send(head + body)
    else:
        await stream.send(head)
        await stream.send(body)
    return keep_alive


async def body_pieces(
    reader: BufferedByteReceiveStream, request: Request
) -> AsyncIterator[bytes]:
    """The unread body of a streamed request, in pieces of at most PIECE bytes.

    Raises ValueError for chunked framing it cannot read (the connection must
    close then) and anyio's stream errors when the client leaves mid-body.
    """
    if not request.unread:
        return
    if not request.chunked:
        left = request.content_length
        while left > 0:
            piece = await reader.receive(min(PIECE, left))
            left -= len(piece)
            yield piece
        request.unread = False
        return
    total = 0
    while True:
        line = await reader.receive_until(b"\r\n", 1024)
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ValueError("malformed chunk size") from None
        if size == 0:
            while await reader.receive_until(b"\r\n", MAX_HEAD_BYTES):
                pass  # trailer fields, ignored
            request.unread = False
            return
        total += size
        if total > MAX_STREAMED_BYTES:
            raise ValueError(f"body over {MAX_STREAMED_BYTES} bytes")
        left = size
        while left > 0:
            piece = await reader.receive(min(PIECE, left))
            left -= len(piece)
            yield piece
        if await reader.receive_exactly(2) != b"\r\n":
            raise ValueError("malformed chunk")


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


async def _serve(
    stream: SocketStream, respond: Respond, refuse: Refuse, streams: Streams | None
) -> None:
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
            request.streamed = streams is not None and streams(request)
            _check_framing(request)
        except _Refused as refused:
            reply = refuse(refused.status, refused.message)
            await send(stream, reply, keep_alive=False)
            return
        if request.expect_continue and (request.content_length or request.chunked):
            await stream.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        if request.streamed:
            request.unread = request.chunked or request.content_length > 0
        else:
            request.body = await reader.receive_exactly(request.content_length)
        keep_alive = await respond(stream, reader, request)
        if request.unread:
            # a reply sent before its body was read (a refused upload): read the
            # rest, or closing would reset the connection under the client's read
            keep_alive = await _drain(reader, request) and keep_alive
        if not keep_alive:
            return


async def _drain(reader: BufferedByteReceiveStream, request: Request) -> bool:
    """Read and drop what is left of a streamed body, up to MAX_BODY_BYTES; False
    if the connection must close instead."""
    dropped = 0
    try:
        async for piece in body_pieces(reader, request):
            dropped += len(piece)
            if dropped > MAX_BODY_BYTES:
                return False
    except ValueError:
        return False
    return True


def _parse_head(head: bytes) -> Request:
    lines = head.decode("latin-1").lstrip("\r\n").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _Refused(400, "Malformed request line.")
    method, target, version = parts
    path, _, query = target.partition("?")
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
        path=path,
        query=query,
        headers=headers,
        keep_alive=keep_alive,
        expect_continue=headers.get("expect", "").lower() == "100-continue",
    )


def _check_framing(req: Request) -> None:
    """Refuse bodies this server cannot frame; sets `content_length` (or `chunked`
    for a streamed request) otherwise."""
    coding = req.headers.get("transfer-encoding")
    if coding is not None:
        if not req.streamed or coding.strip().lower() != "chunked":
            raise _Refused(
                411, "Chunked request bodies are not supported; send Content-Length."
            )
        if "content-length" in req.headers:
            raise _Refused(400, "Both Transfer-Encoding and Content-Length.")
        req.chunked = True
        return
    raw = req.headers.get("content-length")
    if raw is None:
        if req.method == "POST":
            raise _Refused(411, "A POST needs a Content-Length header.")
        return
    if not raw.isdigit():
        raise _Refused(400, "Invalid Content-Length.")
    req.content_length = int(raw)
    limit = MAX_STREAMED_BYTES if req.streamed else MAX_BODY_BYTES
    if req.content_length > limit:
        raise _Refused(413, f"Request body over {limit} bytes.")
