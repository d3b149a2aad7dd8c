"""ASGI glue every service mounts: request ids, per-route request metrics, body limits,
and a shortcut for the hot routes.

``RequestMiddleware`` is pure ASGI (no BaseHTTPMiddleware): it costs a few microseconds
per request, which matters on sub-millisecond inference paths. FastAPI's own layers
(error middleware, exception handling, routing) cost about 100 us a request on these
machines, as much as a small model's whole answer: :class:`ShortcutApp` hands the inference
POSTs to a :class:`Shortcut` before them (:class:`HotRoutes`, or the router's own endpoint).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sluice.core import logging as ctx
from sluice.core.errors import PayloadTooLarge, SluiceError
from sluice.core.metrics import LATENCY_BUCKETS

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = b"x-request-id"


class _RequestIds:
    """Unique request ids without a system call each: a random per-process prefix and a
    counter, 32 hex characters like ``uuid4().hex`` (64 random bits tell processes apart).
    A forked child draws a new prefix."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


new_request_id = _RequestIds()
"""A new request id, e.g. ``'3f1c9a0b7d2e4c51000000000000002a'``."""


class HttpMetrics:
    """Request count by route and code, and latency by route, for one service."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.requests = Counter(
            f"sluice_{service}_http_requests_total",
            "HTTP requests answered, by route template and status code.",
            ["endpoint", "code"],
            registry=registry,
        )
        self.duration = Histogram(
            f"sluice_{service}_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        # labels() costs a lock and a tuple per call: keep the children per (route, code)
        self._series: dict[tuple[str, int], tuple[Any, Any]] = {}

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answered request of the route template ``endpoint`` and time it."""
        series = self._series.get((endpoint, status))
        if series is None:
            series = self._series[(endpoint, status)] = (
                self.requests.labels(endpoint, str(status)),
                self.duration.labels(endpoint),
            )
        series[0].inc()
        series[1].observe(seconds)


def request_id(scope: Scope) -> str:
    """The caller's ``x-request-id`` (at most 128 characters), else a new id."""
    return _header(scope, REQUEST_ID_HEADER) or new_request_id()


class RequestMiddleware:
    """Give every request an id (``x-request-id`` in, else a new one; echoed back) and time it."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self._templates: dict[Any, str] = {}
        """Endpoint -> route template, for plain Starlette routes (found once, not per call)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        scope.setdefault("state", {})["request_id"] = rid
        token = ctx.request_id.set(rid)
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER, rid.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.metrics.observe(self._template(scope), status, time.perf_counter() - start)
            ctx.request_id.reset(token)

    def _template(self, scope: Scope) -> str:
        route = scope.get("route")
        endpoint = scope.get("endpoint")
        if route is None and endpoint is not None:
            # FastAPI's router puts only its own APIRoutes in scope["route"]; find a plain
            # Starlette route (app.add_route) by the endpoint the router matched, once.
            if endpoint not in self._templates:
                routes = getattr(scope.get("router"), "routes", ())
                found = next((r for r in routes if getattr(r, "endpoint", None) is endpoint), None)
                path = getattr(found, "path", None)
                self._templates[endpoint] = path if isinstance(path, str) else "unmatched"
            return self._templates[endpoint]
        path = getattr(route, "path", None)
        return path if isinstance(path, str) else "unmatched"


class Shortcut(Protocol):
    """A plain ASGI app for a few hot routes: ``match`` a scope, then call it with it."""

    def match(self, scope: Scope) -> bool: ...

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


class ShortcutApp(FastAPI):
    """FastAPI for everything but what ``shortcut`` matches, which it answers directly."""

    shortcut: Shortcut | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.shortcut is not None and self.shortcut.match(scope):
            await self.shortcut(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def route_pattern(template: str) -> re.Pattern[str]:
    """A route template as a regular expression, one named group per ``{param}``.

    >>> route_pattern("/v2/models/{model}/infer").match("/v2/models/churn/infer")["model"]
    'churn'
    """
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$")


Endpoint = Callable[[Request], Awaitable[Response]]
Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]
"""An answer as the hot path sends it: status, body, raw headers (``content-length`` among
them; it adds ``x-request-id``)."""
_HOT = "sluice.hot_route"
T = TypeVar("T")


class Disconnected(Exception):
    """The client went away before its request was read: there is no one to answer, and
    nothing is counted."""


class HotPath(Generic[T]):
    """The one hot path of every service: POSTs answered without FastAPI's layers, doing
    what they and ``RequestMiddleware`` do. ``match`` finds the route (its template, the
    path parameters in ``scope["path_params"]`` and the route's ``T`` in the scope), then
    ``__call__`` sets the request id (the caller's ``x-request-id`` or a new one; in the
    logging context and echoed), calls :meth:`answer`, turns a ``SluiceError`` into
    :meth:`error`'s answer and anything unexpected into a 500 logged once, sends it and
    times it in :meth:`observed` (per route template). No per-request allocation beyond
    the answer: subclasses fill in ``answer``, ``error`` and, for more metrics, ``observed``.
    """

    def __init__(self, routes: Sequence[tuple[str, T]], metrics: HttpMetrics) -> None:
        self.metrics = metrics
        self._routes = [(route_pattern(t), t, target) for t, target in routes]

    def match(self, scope: Scope) -> bool:
        """Whether ``scope`` is a POST to one of the routes (kept in the scope if so)."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return False
        path = scope["path"]
        for pattern, template, target in self._routes:
            found = pattern.match(path)
            if found is not None:
                scope[_HOT] = (template, target)
                scope["path_params"] = found.groupdict()
                return True
        return False

    async def answer(
        self, scope: Scope, receive: Receive, rid: str, template: str, target: T
    ) -> Answer:
        """The answer to one matched request; may raise ``SluiceError`` or ``Disconnected``."""
        raise NotImplementedError

    def error(self, exc: SluiceError, template: str, target: T) -> Answer:
        """The answer to a request that failed with ``exc``."""
        raise NotImplementedError

    def observed(self, template: str, status: int, seconds: float) -> None:
        """One request answered with ``status`` in ``seconds`` (counted before it is written)."""
        self.metrics.observe(template, status, seconds)

    async def respond(self, scope: Scope, receive: Receive) -> Answer | None:
        """The answer to a matched request, ``x-request-id`` among its headers, counted and
        timed; None when the client went away before its request was read."""
        started = time.perf_counter()
        if _HOT not in scope and not self.match(scope):
            raise AssertionError(f"not a route of this hot path: {scope['path']}")
        template, target = scope[_HOT]
        rid = request_id(scope)
        token = ctx.request_id.set(rid)
        try:
            try:
                status, body, headers = await self.answer(scope, receive, rid, template, target)
            except Disconnected:
                return None
            except SluiceError as exc:
                status, body, headers = self.error(exc, template, target)
            except Exception:
                log.exception("unexpected error on %s", scope["path"])
                failed = SluiceError("internal server error")
                status, body, headers = self.error(failed, template, target)
            headers.append((REQUEST_ID_HEADER, rid.encode()))
            self.observed(template, status, time.perf_counter() - started)
            return status, body, headers
        finally:
            ctx.request_id.reset(token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """:meth:`respond` as an ASGI app."""
        answer = await self.respond(scope, receive)
        if answer is not None:
            status, body, headers = answer
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})


class HotRoutes(HotPath[Endpoint]):
    """Starlette endpoints (``Request`` in, a plain ``Response`` out) on the hot path;
    ``on_error`` shapes a ``SluiceError`` for the route's template. The request id is in
    ``request.state.request_id`` too. Register the same endpoints as ordinary routes too:
    other methods then get FastAPI's 405."""

    def __init__(
        self,
        routes: Sequence[tuple[str, Endpoint]],
        metrics: HttpMetrics,
        on_error: Callable[[SluiceError, str], Response],
    ) -> None:
        super().__init__(routes, metrics)
        self.on_error = on_error

    async def answer(
        self,
        scope: Scope,
        receive: Receive,
        rid: str,
        template: str,  # noqa: ARG002 (the route's template, unused here)
        target: Endpoint,
    ) -> Answer:
        scope.setdefault("state", {})["request_id"] = rid
        return _raw(await target(Request(scope, receive)))

    def error(self, exc: SluiceError, template: str, target: Endpoint) -> Answer:  # noqa: ARG002
        return _raw(self.on_error(exc, template))


def _raw(response: Response) -> Answer:
    """A plain (not streaming, no background task) Response as the hot path sends it."""
    return response.status_code, bytes(response.body), response.raw_headers


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            decoded: str = value.decode("latin-1")
            return decoded[:128]
    return None


async def read_body(request: Request, limit: int) -> bytes:
    """Read a request body, refusing (413) as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes is over the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
