"""ASGI glue every service mounts: request ids, per-route request metrics, body limits.

``RequestMiddleware`` is pure ASGI (no BaseHTTPMiddleware): it costs a few microseconds
per request, which matters on sub-millisecond inference paths.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sluice.core import logging as ctx
from sluice.core.errors import PayloadTooLarge
from sluice.core.metrics import LATENCY_BUCKETS

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


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    if route is None and scope.get("endpoint") is not None:
        # FastAPI's router puts only its own APIRoutes in scope["route"]; find a plain
        # Starlette route (app.add_route) by the endpoint the router matched.
        endpoint = scope["endpoint"]
        routes = getattr(scope.get("router"), "routes", ())
        route = next((r for r in routes if getattr(r, "endpoint", None) is endpoint), None)
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestMiddleware:
    """Give every request an id (``x-request-id`` in, else a new one; echoed back) and time it."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

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
            self.metrics.observe(_route_template(scope), status, time.perf_counter() - start)
            ctx.request_id.reset(token)


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
