"""HTTP endpoints: parse the request, call the RouterService, shape the response.

The inference POSTs (V2 infer, ``/v1/models/{m}:predict``) are one plain ASGI app,
:class:`InferenceEndpoint`, that the router app calls before FastAPI's middleware, exception
and routing layers (they cost about as much as the router's own work per request). It is
core's :class:`~sluice.core.http.HotPath` (the model server's too), which does what those
layers did: the request id, the per-route request metrics, errors as responses. The rest
(V2 metadata and health, the admin API) are ordinary routes, the same paths as the model
server's. Every answer carries ``x-sluice-version``. V2 errors are ``{"error": "message"}``;
V1 errors use the core shape.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope

from sluice import __version__
from sluice.core.errors import InvalidInput, PayloadTooLarge, SluiceError, Unauthorized
from sluice.core.handlers import error_body, json_response
from sluice.core.http import Answer, Disconnected, HotPath, HttpMetrics
from sluice.router.backends import HEADER_LENGTH
from sluice.router.codec import Protocol
from sluice.router.errors import InvalidHeader, RateLimited
from sluice.router.metrics import Metrics
from sluice.router.ratelimit import Limiter, retry_after
from sluice.router.service import Inference, RouterService
from sluice.router.settings import Settings

log = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]
Headers = dict[bytes, bytes]
"""A request's headers by lower-case name (the first of repeated ones)."""
_BINARY = HEADER_LENGTH.encode()
VERSION_HEADER = "x-sluice-version"
KEY_HEADER = "x-sluice-key"
SERVER_NAME = "sluice-router"

INFER_ROUTES: tuple[tuple[str, Protocol], ...] = (
    ("/v1/models/{model}:predict", "v1"),
    ("/v1/models/{model}:explain", "v1"),
    ("/v2/models/{model}/infer", "v2"),
    ("/v2/models/{model}/versions/{version}/infer", "v2"),
)
"""The inference paths (as route templates, the ``endpoint`` label of the HTTP metrics)."""


class Guard:
    """The optional API key and the per-client rate limit of inference calls."""

    def __init__(self, settings: Settings, metrics: Metrics, limiter: Limiter | None) -> None:
        self.keys = [k.encode() for k in settings.api_keys]
        self.trust_forwarded = settings.trust_forwarded_for
        self.metrics = metrics
        self.limiter = limiter

    async def check(self, headers: Headers, client: tuple[str, int] | None) -> None:
        if not self.keys and self.limiter is None:
            return
        key = _api_key(headers)
        if self.keys and not (
            key is not None and any(hmac.compare_digest(key.encode(), k) for k in self.keys)
        ):
            raise Unauthorized("a valid API key is needed: send x-api-key or Authorization")
        if self.limiter is None:
            return
        wait = await self.limiter.take(key or self._client_ip(headers, client))
        if wait > 0:
            self.metrics.rate_limited.inc()
            raise RateLimited(
                f"rate limit exceeded; retry in {wait:.2f}s", retry_after=retry_after(wait)
            )

    def _client_ip(self, headers: Headers, client: tuple[str, int] | None) -> str:
        if self.trust_forwarded:
            forwarded = _text(headers, b"x-forwarded-for")
            if forwarded:
                return forwarded.split(",", 1)[0].strip()
        return client[0] if client else "unknown"


def _text(headers: Headers, name: bytes) -> str | None:
    value = headers.get(name)
    return None if value is None else value.decode("latin-1")


def _binary_header(headers: Headers) -> str | None:
    """``inference-header-content-length``, the one client header forwarded upstream: a
    byte count, or the request is refused (400) before anything is sent."""
    value = _text(headers, _BINARY)
    if value is not None and not (value.isascii() and value.isdigit()):
        raise InvalidHeader(
            f"{HEADER_LENGTH}: expected the length of the JSON part in bytes, got {value[:40]!r}"
        )
    return value


def _api_key(headers: Headers) -> str | None:
    key = _text(headers, b"x-api-key")
    if key is None:
        auth = _text(headers, b"authorization") or ""
        if auth[:7].lower() == "bearer ":
            key = auth[7:].strip()
    return key


class InferenceEndpoint(HotPath[Protocol]):
    """V2 infer and V1 predict/explain on core's hot path (``match`` a scope, then call it),
    answered as (status, body, headers) with no Starlette Request or Response."""

    def __init__(
        self, service: RouterService, settings: Settings, metrics: Metrics, http: HttpMetrics
    ) -> None:
        super().__init__(INFER_ROUTES, http)
        self.service = service
        self.guard = Guard(settings, metrics, service.limiter)
        self.limit = settings.max_body_bytes
        self.gateway = metrics.gateway
        self._gateway: dict[int, Any] = {}

    def observed(self, template: str, status: int, seconds: float) -> None:
        """Also the gateway histogram ``http_request_duration_seconds{status}``; a 5xx is
        logged (the request id is in the logging context)."""
        gateway = self._gateway.get(status)
        if gateway is None:
            gateway = self._gateway[status] = self.gateway.labels(str(status))
        gateway.observe(seconds)
        self.metrics.observe(template, status, seconds)
        if status >= 500:
            log.warning("request failed", extra={"route": template, "status": status})

    def error(self, exc: SluiceError, template: str, target: Protocol) -> Answer:  # noqa: ARG002
        return _error(exc, target)

    async def answer(
        self, scope: Scope, receive: Receive, rid: str, template: str, target: Protocol
    ) -> Answer:
        """The answer to one inference (or explain) request."""
        headers: Headers = dict(reversed(scope["headers"]))
        await self.guard.check(headers, scope.get("client"))
        params = scope["path_params"]
        version = params.get("version")
        pin = _text(headers, b"x-sluice-version") or version
        if version is not None and pin != version:
            raise InvalidInput(f"{VERSION_HEADER} {pin!r} contradicts the path's {version!r}")
        req = Inference(
            model=params["model"],
            protocol=target,
            body=await _read_body(receive, headers.get(b"content-length"), self.limit),
            request_id=rid,
            pin=pin,
            key=_text(headers, b"x-sluice-key"),
            binary_header=_binary_header(headers) if target == "v2" else None,
        )
        if template.endswith(":explain"):
            reply, answered = await self.service.explain(req)
        else:
            reply, answered = await self.service.predict(req)
        out = [
            (b"content-type", (reply.content_type or "application/json").encode("latin-1")),
            (b"content-length", str(len(reply.body)).encode()),
            (VERSION_HEADER.encode(), answered.encode()),
        ]
        if reply.header_length is not None:
            out.append((HEADER_LENGTH.encode(), reply.header_length.encode("latin-1")))
        return reply.status, reply.body, out


async def _read_body(receive: Receive, declared: bytes | None, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is over ``limit`` bytes."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"request body of {declared.decode()} bytes is over the limit of {limit}"
        )
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        chunk: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        if not chunks and not more and len(chunk) <= limit:
            return chunk  # the usual case: one message
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
        if not more:
            return b"".join(chunks)


def _error(exc: SluiceError, protocol: Protocol) -> Answer:
    if exc.status >= 500 and exc.status != 503:
        log.warning("inference failed: %s", exc.message)
    doc: dict[str, Any] = {"error": exc.message} if protocol == "v2" else error_body(exc)
    body = orjson.dumps(doc)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if isinstance(exc, RateLimited):
        headers.append((b"retry-after", str(exc.details.get("retry_after", "1")).encode()))
    return exc.status, body, headers


def add_routes(app: FastAPI, service: RouterService, inference: InferenceEndpoint) -> None:
    """Mount the metadata and health endpoints; the inference paths answer 405 to anything
    but POST here (a POST is answered by ``inference`` before it reaches the routes)."""

    async def proxy(request: Request) -> Response:
        params = request.path_params
        v1 = request.url.path.startswith("/v1/")
        try:
            reply, version = await service.proxy_get(
                params["model"], params.get("version"), request.url.path
            )
        except SluiceError as exc:
            return json_response(exc.status, error_body(exc) if v1 else {"error": exc.message})
        headers = {VERSION_HEADER: version}
        if reply.header_length is not None:
            headers[HEADER_LENGTH] = reply.header_length
        return Response(
            reply.body,
            status_code=reply.status,
            media_type=reply.content_type or "application/json",
            headers=headers,
        )

    async def server_live(_: Request) -> Response:
        return json_response(200, {"live": True})

    async def server_ready(_: Request) -> Response:
        ready = await service.ready_reason() is None
        return json_response(200 if ready else 503, {"ready": ready})

    async def server_metadata(_: Request) -> Response:
        return json_response(200, {"name": SERVER_NAME, "version": __version__, "extensions": []})

    for path, _ in INFER_ROUTES:
        # an ASGI app as the endpoint: Starlette calls it as it is
        app.router.routes.append(Route(path, inference, methods=["POST"]))
    routes: list[tuple[str, Endpoint, str]] = [
        ("/v1/models/{model}", proxy, "GET"),
        ("/v2/models/{model}", proxy, "GET"),
        ("/v2/models/{model}/ready", proxy, "GET"),
        ("/v2/models/{model}/versions/{version}", proxy, "GET"),
        ("/v2/models/{model}/versions/{version}/ready", proxy, "GET"),
        ("/v2/health/live", server_live, "GET"),
        ("/v2/health/ready", server_ready, "GET"),
        ("/v2", server_metadata, "GET"),
    ]
    for path, endpoint, method in routes:
        app.add_route(path, endpoint, methods=[method])
