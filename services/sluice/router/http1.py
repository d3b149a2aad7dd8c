"""A small HTTP/1.1 keep-alive client for the model servers: asyncio protocols, httptools'
response parser (the one uvicorn uses), a pool of connections per host.

Chosen by measurement (bench/results/router.md): through aiohttp's ClientSession a request
cost this router about 150 us of CPU more than through this client, most of the gap to the
throughput target. It does only what the router needs: one request at a time per
connection, the body in memory, ``Content-Length`` or chunked answers, http and https, no
redirects, cookies or compression. Connections are opened once and kept (no per-request
DNS or connect); one the server closed while idle is noticed and replaced, and a request
that met such a closed connection before a byte came back is sent again on a new one.

What it refuses to do: send a header name or value holding CR, LF or NUL (``InvalidHeader``,
before anything is sent: a forwarded value could otherwise add headers or a request of its
own), send userinfo of the URL anywhere (``Host`` is the host and port only, an IPv6 address
in brackets), and hold an answer over ``max_response_bytes`` in memory (the connection is
closed and the request fails with reason ``too_large``).
"""

from __future__ import annotations

import asyncio
import collections
import re
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httptools

from sluice.router.backends import HEADER_LENGTH, Reply, UpstreamFailure

_LENGTH = HEADER_LENGTH.encode()
_CONTENT_LENGTH = b"content-length"
_FORBIDDEN = re.compile(r"[\r\n\x00]")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
"""An HTTP field name (RFC 9110 token)."""
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
MAX_TARGETS = 4096
"""Parsed URLs kept (paths are per model and version, so a few dozen in practice)."""


class InvalidHeader(ValueError):
    """A header this client was asked to send holds CR, LF or NUL, or its name is not a
    token: nothing was sent. The router checks what it forwards first (a client's header is
    its 400), so this is the last guard."""


class _Target:
    """What a URL's request needs: the request line's tail and Host, and the pool key."""

    __slots__ = ("head", "host", "key", "port", "tls")

    def __init__(self, url: str) -> None:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:  # a port that is not a number, or out of range
            raise UpstreamFailure("connect", f"{url}: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UpstreamFailure("connect", f"{url}: not an http(s) URL")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = port or (443 if self.tls else 80)
        self.key = (parts.scheme, self.host, self.port)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if _FORBIDDEN.search(path) or " " in path:
            raise InvalidHeader(f"{url}: the path holds a space, CR, LF or NUL")
        self.head = f" {path} HTTP/1.1\r\nHost: {host_header(url)}\r\n".encode("latin-1")


def host_header(url: str) -> str:
    """The ``Host`` of a request to ``url``: host and port only, never the userinfo.

    >>> host_header("http://user:secret@model-v1:8000/v2/models/m/infer")
    'model-v1:8000'
    >>> host_header("http://[::1]:8000/x"), host_header("https://Example.com/")
    ('[::1]:8000', 'example.com')
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return host if parts.port is None else f"{host}:{parts.port}"


def header_lines(headers: Mapping[str, str]) -> list[bytes]:
    """``name: value\\r\\n`` for each header; InvalidHeader if one would break the head.

    >>> header_lines({"content-type": "application/json"})
    [b'content-type: application/json\\r\\n']
    >>> header_lines({"x-a": "1\\r\\nx-b: 2"})
    Traceback (most recent call last):
    sluice.router.http1.InvalidHeader: header 'x-a': the value holds CR, LF or NUL
    """
    lines = []
    for name, value in headers.items():
        if not _TOKEN.match(name):
            raise InvalidHeader(f"header {name!r}: not a valid header name")
        if _FORBIDDEN.search(value):
            raise InvalidHeader(f"header {name!r}: the value holds CR, LF or NUL")
        lines.append(f"{name}: {value}\r\n".encode("latin-1"))
    return lines


class ResponseTooLarge(ConnectionError):
    """The answer is over the client's ``max_response_bytes`` (the connection is closed)."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Reply] | None = None
        self.alive = True
        self.used = False
        """It answered a request before (so the server may have closed it while idle)."""
        self.answered = False
        """Bytes of the current request's answer arrived."""
        self._body: list[bytes] = []
        self._size = 0
        self._type = ""
        self._length: str | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport  # uvloop's transports are not asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self.answered = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(f"malformed answer: {exc}")

    def eof_received(self) -> bool | None:
        self.alive = False
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        self.pool.forget(self)
        self._fail(f"connection closed: {exc}" if exc else "connection closed")

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-type":
            self._type = value.decode("latin-1")
        elif name == _LENGTH:
            self._length = value.decode("latin-1")
        elif name == _CONTENT_LENGTH and value.isdigit() and int(value) > self.pool.max_bytes:
            self._too_large(f"{int(value)} bytes declared")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self.pool.max_bytes:
            self._too_large(f"more than {self.pool.max_bytes} bytes sent")
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if not self.parser.should_keep_alive():
            self.alive = False
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        reply = Reply(self.parser.get_status_code(), body, self._type, self._length)
        self._body, self._size, self._type, self._length = [], 0, "", None
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)

    def send(self, data: bytes) -> asyncio.Future[Reply]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.answered = False
        self.used = True
        self.transport.write(data)
        return self.waiter

    def usable(self) -> bool:
        return self.alive and self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        self.alive = False
        if self.transport is not None:
            self.transport.close()

    def _fail(self, why: str, kind: type[ConnectionError] = ConnectionError) -> None:
        self.close()
        self._body, self._size = [], 0
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(kind(why))

    def _too_large(self, detail: str) -> None:
        limit = self.pool.max_bytes
        self._fail(f"the answer is over the limit of {limit} bytes ({detail})", ResponseTooLarge)
        raise httptools.HttpParserCallbackError("answer too large")  # stop parsing it


class _Pool:
    """At most ``limit`` connections to one host; the most recently used idle one first."""

    def __init__(self, target: _Target, limit: int, connect_timeout: float, max_bytes: int) -> None:
        self.target = target
        self.limit = limit
        self.connect_timeout = connect_timeout
        self.max_bytes = max_bytes
        self.idle: list[_Connection] = []
        self.open = 0
        self.queue: collections.deque[asyncio.Future[None]] = collections.deque()
        self.tls = ssl.create_default_context() if target.tls else None

    async def acquire(self) -> _Connection:
        while True:
            while self.idle:
                conn = self.idle.pop()
                if conn.usable():
                    return conn
            if self.open < self.limit:
                self.open += 1
                try:
                    return await self._connect()
                except BaseException:
                    self.open -= 1
                    self._wake()
                    raise
            turn = asyncio.get_running_loop().create_future()
            self.queue.append(turn)
            try:
                await turn
            except asyncio.CancelledError:
                self._wake()  # pass the turn on
                raise

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        target = self.target
        async with asyncio.timeout(self.connect_timeout):
            _, conn = await loop.create_connection(
                lambda: _Connection(self), target.host, target.port, ssl=self.tls
            )
        return conn

    def release(self, conn: _Connection) -> None:
        if conn.usable() and conn.waiter is None:
            self.idle.append(conn)
        else:
            conn.close()
        self._wake()

    def forget(self, conn: _Connection) -> None:
        """A connection closed (by either side)."""
        if conn in self.idle:
            self.idle.remove(conn)
        self.open -= 1
        self._wake()

    def _wake(self) -> None:
        while self.queue:
            turn = self.queue.popleft()
            if not turn.done():
                turn.set_result(None)
                return

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


class Http1Upstream:
    """An UpstreamClient: keep-alive pools per upstream host; answers of at most
    ``max_response_bytes``."""

    def __init__(
        self,
        *,
        connections: int,
        connect_timeout: float,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.connections = connections
        self.connect_timeout = connect_timeout
        self.max_response_bytes = max_response_bytes
        self._targets: dict[str, _Target] = {}
        self._pools: dict[tuple[str, str, int], _Pool] = {}

    def _pool(self, url: str) -> tuple[_Target, _Pool]:
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) >= MAX_TARGETS:
                self._targets.clear()
            target = self._targets[url] = _Target(url)
        pool = self._pools.get(target.key)
        if pool is None:
            pool = self._pools[target.key] = _Pool(
                target, self.connections, self.connect_timeout, self.max_response_bytes
            )
        return target, pool

    async def request(
        self,
        method: str,
        url: str,
        body: bytes | None,
        timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        target, pool = self._pool(url)
        parts = [method.encode(), target.head]
        if headers:
            parts.extend(header_lines(headers))
        if body is not None:
            parts.append(b"Content-Length: %d\r\n\r\n" % len(body))
            parts.append(body)
        else:
            parts.append(b"\r\n")
        data = b"".join(parts)
        try:
            async with asyncio.timeout(timeout):
                return await self._exchange(pool, data, url)
        except TimeoutError:
            raise UpstreamFailure("timeout", f"{url} did not answer in {timeout}s") from None
        except OSError as exc:
            raise UpstreamFailure("connect", f"{url}: {exc}") from None

    async def _exchange(self, pool: _Pool, data: bytes, url: str) -> Reply:
        while True:
            conn = await pool.acquire()
            stale = conn.used  # the server may have closed it while it was idle
            try:
                reply = await conn.send(data)
            except ResponseTooLarge as exc:
                pool.release(conn)
                raise UpstreamFailure("too_large", str(exc)) from None
            except ConnectionError as exc:
                pool.release(conn)
                if stale and not conn.answered:
                    continue  # not answered at all: send it on another connection
                raise UpstreamFailure("connect", f"{url}: {exc}") from None
            except BaseException:
                conn.close()  # a timeout or a cancel: the answer may still come, drop it
                pool.release(conn)
                raise
            pool.release(conn)
            return reply

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
