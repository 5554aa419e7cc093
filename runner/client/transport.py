"""The HTTP client a run sends on: sharded connection pools, proxies, bounded reads.

Owns: `make_http_client` (sized for the concurrency plus relay URL fetches), the
sharded pools behind it, the choice between them and an environment proxy, and
reading a body up to a limit. The shards wrap any `httpx.AsyncBaseTransport`, so a
test's `httpx.MockTransport` takes the production path. Must not classify answers.
"""

from __future__ import annotations

import urllib.request
from typing import TYPE_CHECKING, Any

import anyio
import httpcore
import httpx

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator, Iterable, Sequence

DEFAULT_TIMEOUT = httpx.Timeout(connect=15.0, write=60.0, read=300.0, pool=None)
# Connections beyond `concurrency`, for relay image URL fetches.
URL_FETCH_CONNECTIONS = 4
# httpcore walks every connection of its pool on each request and response close
# (with a syscall per idle one), so CPU per request grows with the pool. Several
# small pools, each request to the least busy, keep that walk short: at
# concurrency 64 this took the benchmark from 56 to ~197 requests/s (pools of 8:
# ~165, of 4: ~197, of 2: no better).
POOL_SHARD_SIZE = 4
# httpcore reads a response 64 KB at a time, each read under its own anyio timeout
# scope, and anyio cuts the up to 256 KB asyncio hands over per socket wake-up into
# such pieces, copying the rest each time. Asking for up to this much per read takes
# a real 1K answer (1.5 MB of base64) in a handful of reads instead of 24 or more.
READ_BYTES = 1024 * 1024
# Success answers whose bodies are read at once. When more arrive together (a wave
# of a thousand requests answered within a second or two, from a server next door),
# the rest wait in their sockets rather than in this process: each answer being read
# holds a received chunk (up to 256 KB) in memory, and each takes its turn on the
# event loop. Not fewer: on a distant link each answer may take a second to arrive
# (TCP slow start after the server's idle wait), and 1,000 requests of 16 s need
# about 60 answers a second.
ANSWERS_READ_AT_ONCE = 128
# Threads writing spilled image data to temp files (client.call): if the disk
# stalls, reading waits on them, not the event loop nor the run's other threads.
SPOOL_WRITERS = 4


def make_http_client(
    *,
    concurrency: int,
    timeout: httpx.Timeout | None = None,
    base_url: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An AsyncClient sized for `concurrency` calls plus relay URL fetches.

    A proxy named in the environment (HTTP(S)_PROXY, ALL_PROXY, with NO_PROXY) is
    used, except for a `base_url` on this machine (the simulated API). A given
    `transport` (tests: `httpx.MockTransport`) stands in for the network as the one
    pool shard, so calls take the same direct path as they do in production."""
    timeout = timeout if timeout is not None else DEFAULT_TIMEOUT
    if transport is not None:
        return RunnerClient(_ShardedTransport([transport]), timeout)
    size = max(1, concurrency) + URL_FETCH_CONNECTIONS
    if urllib.request.getproxies() and not _is_loopback(base_url):
        # httpx honours the environment's proxies only when it builds its
        # transports itself.
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        return RunnerClient(None, timeout, limits=limits)
    shards = max(1, -(-size // POOL_SHARD_SIZE))
    pools = _connection_pools(shards, -(-size // shards))
    return RunnerClient(_ShardedTransport(pools), timeout)


class RunnerClient(httpx.AsyncClient):
    """The runner's AsyncClient. Without a proxy, generateContent calls go straight
    to its sharded transport (`direct`), skipping the client's per-request layers
    (URL merging, auth and redirect flows, the cookie jar): about 0.25 ms of CPU a
    request, a sixth of what httpx costs here. `readers` admits the success
    answers whose bodies are read at once; `spool_writers` are the threads that
    write their spilled image data."""

    def __init__(
        self,
        transport: _ShardedTransport | None,
        timeout: httpx.Timeout,
        *,
        limits: httpx.Limits | None = None,
    ) -> None:
        if transport is None:  # a proxy: httpx builds its own pool
            super().__init__(
                limits=limits or httpx.Limits(),
                timeout=timeout,
                follow_redirects=False,
            )
        else:
            super().__init__(
                transport=transport, timeout=timeout, follow_redirects=False
            )
        self.direct = transport
        self.readers = anyio.CapacityLimiter(ANSWERS_READ_AT_ONCE)
        self.spool_writers = anyio.CapacityLimiter(SPOOL_WRITERS)


async def read_limited(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
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


def _is_loopback(url: str | None) -> bool:
    if not url:
        return False
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL:
        return False
    return host == "localhost" or host == "::1" or host.startswith("127.")


def _connection_pools(shards: int, per_shard: int) -> list[httpx.AsyncBaseTransport]:
    limits = httpx.Limits(
        max_connections=per_shard,
        max_keepalive_connections=per_shard,
        keepalive_expiry=30,
    )
    # One TLS context and one network backend for all pools: building a context
    # (CA certificates loaded) costs ~30 ms of CPU, and each pool would otherwise
    # build its own.
    tls = httpx.create_ssl_context()
    backend = _LargeReads()
    return [_Pool(limits, tls, backend) for _ in range(shards)]


class _Pool(httpx.AsyncHTTPTransport):
    """httpx's transport (its exception mapping and response types) over an
    httpcore pool that reads with `_LargeReads`."""

    def __init__(
        self, limits: httpx.Limits, tls: ssl.SSLContext, backend: _LargeReads
    ) -> None:
        super().__init__(limits=limits, verify=tls)
        # httpx takes no network backend, so its pool is made again with one. Had
        # a later httpx renamed `_pool`, its own pool stays (tests say so).
        if hasattr(self, "_pool"):
            self._pool = httpcore.AsyncConnectionPool(
                ssl_context=tls,
                max_connections=limits.max_connections,
                max_keepalive_connections=limits.max_keepalive_connections,
                keepalive_expiry=limits.keepalive_expiry,
                network_backend=backend,
            )


class _LargeReads(httpcore.AsyncNetworkBackend):
    """httpcore's anyio backend, its streams reading up to READ_BYTES at a time.
    (The `timeout` parameters are httpcore's interface: ASYNC109 does not apply.)"""

    def __init__(self) -> None:
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_tcp(
            host,
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )
        return _LargeReadStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options
        )
        return _LargeReadStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _LargeReadStream(httpcore.AsyncNetworkStream):
    """Reads up to READ_BYTES, except the first after a request is written (the
    status line and headers): httpcore's own size, since what it reads past the
    headers waits in memory until the body is read (see ANSWERS_READ_AT_ONCE)."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._large = False

    async def read(
        self,
        max_bytes: int,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> bytes:
        if not self._large:
            self._large = True
            return await self._stream.read(max_bytes, timeout)
        return await self._stream.read(max(max_bytes, READ_BYTES), timeout)

    async def write(
        self,
        buffer: bytes,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> None:
        self._large = False
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        tls = await self._stream.start_tls(ssl_context, server_hostname, timeout)
        return _LargeReadStream(tls)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _ShardedTransport(httpx.AsyncBaseTransport):
    """Each request to one of the least busy `pools`; a shard counts as busy until
    the response body is closed. The shards are kept in sets by how busy they are,
    so that choosing one does not walk all 257 of a 1,024-request run (22 us)."""

    def __init__(self, pools: Sequence[httpx.AsyncBaseTransport]) -> None:
        self._pools = list(pools)
        self._busy = [0] * len(self._pools)
        self._by_busy: list[set[int]] = [set(range(len(self._pools)))]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        shard = next(s for s in self._by_busy if s).pop()
        self._move(shard, +1)
        try:
            response = await self._pools[shard].handle_async_request(request)
        except BaseException:
            self.release(shard)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        if response.is_closed:
            # A body already read in full (a MockTransport's canned content): no
            # close will come to give the shard back.
            self.release(shard)
            return response
        response.stream = _Released(response.stream, self, shard)
        return response

    def release(self, shard: int) -> None:
        self._by_busy[self._busy[shard]].discard(shard)
        self._move(shard, -1)

    def _move(self, shard: int, by: int) -> None:
        busy = self._busy[shard] = self._busy[shard] + by
        if busy == len(self._by_busy):
            self._by_busy.append(set())
        self._by_busy[busy].add(shard)

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
