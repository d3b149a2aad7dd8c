"""HTTP endpoints: parse the request, call the RouterService, shape the response.

The inference paths are plain Starlette endpoints (no pydantic between the bytes and the
upstream call), and they are the same paths as the model server's: V2 infer, V2 metadata
and health, and ``/v1/models/{m}:predict``. Every answer carries ``x-sluice-version``.
V2 errors are ``{"error": "message"}``; V1 errors use the core shape.
"""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from sluice import __version__
from sluice.core.errors import (
    InvalidInput,
    SluiceError,
    Unauthorized,
    error_body,
    json_response,
)
from sluice.core.http import read_body
from sluice.router.backends import HEADER_LENGTH, Reply
from sluice.router.codec import Protocol
from sluice.router.errors import RateLimited
from sluice.router.metrics import Metrics
from sluice.router.ratelimit import RateLimiter, retry_after
from sluice.router.service import Inference, RouterService
from sluice.router.settings import Settings

log = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]
VERSION_HEADER = "x-sluice-version"
KEY_HEADER = "x-sluice-key"
SERVER_NAME = "sluice-router"


class Guard:
    """The optional API key and the per-client rate limit of inference calls."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.keys = [k.encode() for k in settings.api_keys]
        self.trust_forwarded = settings.trust_forwarded_for
        self.metrics = metrics
        self.limiter = None
        if settings.rate_limit_rps > 0:
            burst = settings.rate_limit_burst or max(1, int(settings.rate_limit_rps))
            self.limiter = RateLimiter(settings.rate_limit_rps, burst)

    def check(self, request: Request) -> None:
        key = _api_key(request)
        if self.keys and not (
            key is not None and any(hmac.compare_digest(key.encode(), k) for k in self.keys)
        ):
            raise Unauthorized("a valid API key is needed: send x-api-key or Authorization")
        if self.limiter is None:
            return
        wait = self.limiter.take(key or self._client_ip(request), time.monotonic())
        if wait > 0:
            self.metrics.rate_limited.inc()
            raise RateLimited(
                f"rate limit exceeded; retry in {wait:.2f}s", retry_after=retry_after(wait)
            )

    def _client_ip(self, request: Request) -> str:
        if self.trust_forwarded:
            forwarded = request.headers.get("x-forwarded-for")
            if forwarded:
                return forwarded.split(",", 1)[0].strip()
        return request.client.host if request.client else "unknown"


def _api_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key is None:
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            key = auth[7:].strip()
    return key


def add_routes(app: FastAPI, service: RouterService, settings: Settings, metrics: Metrics) -> None:
    """Mount the inference, metadata and health endpoints."""
    guard = Guard(settings, metrics)
    limit = settings.max_body_bytes
    gateway = metrics.gateway

    async def infer(request: Request, protocol: Protocol, version: str | None) -> Response:
        started = time.perf_counter()
        try:
            guard.check(request)
            headers = request.headers
            pin = headers.get(VERSION_HEADER) or version
            if version is not None and pin != version:
                raise InvalidInput(f"{VERSION_HEADER} {pin!r} contradicts the path's {version!r}")
            req = Inference(
                model=request.path_params["model"],
                protocol=protocol,
                body=await read_body(request, limit),
                request_id=_request_id(request),
                pin=pin,
                key=headers.get(KEY_HEADER),
                binary_header=headers.get(HEADER_LENGTH) if protocol == "v2" else None,
            )
            reply, answered = await service.predict(req)
            response = _reply(reply, answered)
        except SluiceError as exc:
            response = _error(exc, protocol)
        except Exception:
            log.exception("unexpected error on %s", request.url.path)
            response = _error(SluiceError("internal server error"), protocol)
        gateway.labels(str(response.status_code)).observe(time.perf_counter() - started)
        return response

    async def v1_predict(request: Request) -> Response:
        return await infer(request, "v1", None)

    async def v2_infer(request: Request) -> Response:
        return await infer(request, "v2", request.path_params.get("version"))

    async def proxy(request: Request) -> Response:
        params = request.path_params
        try:
            reply, version = await service.proxy_get(
                params["model"], params.get("version"), request.url.path
            )
            return _reply(reply, version)
        except SluiceError as exc:
            return _error(exc, "v1" if request.url.path.startswith("/v1/") else "v2")

    async def server_live(_: Request) -> Response:
        return json_response(200, {"live": True})

    async def server_ready(_: Request) -> Response:
        ready = await service.ready_reason() is None
        return json_response(200 if ready else 503, {"ready": ready})

    async def server_metadata(_: Request) -> Response:
        return json_response(200, {"name": SERVER_NAME, "version": __version__, "extensions": []})

    routes: list[tuple[str, Endpoint, str]] = [
        ("/v1/models/{model}:predict", v1_predict, "POST"),
        ("/v2/models/{model}/infer", v2_infer, "POST"),
        ("/v2/models/{model}/versions/{version}/infer", v2_infer, "POST"),
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


def _reply(reply: Reply, version: str) -> Response:
    headers = {VERSION_HEADER: version}
    if reply.header_length is not None:
        headers[HEADER_LENGTH] = reply.header_length
    return Response(
        reply.body,
        status_code=reply.status,
        media_type=reply.content_type or "application/json",
        headers=headers,
    )


def _error(exc: SluiceError, protocol: Protocol) -> Response:
    headers = None
    if isinstance(exc, RateLimited):
        headers = {"retry-after": str(exc.details.get("retry_after", "1"))}
    if exc.status >= 500 and exc.status != 503:
        log.warning("inference failed: %s", exc.message)
    body: dict[str, Any] = {"error": exc.message} if protocol == "v2" else error_body(exc)
    return json_response(exc.status, body, headers=headers)


def _request_id(request: Request) -> str:
    state: dict[str, Any] = request.scope.get("state", {})
    rid = state.get("request_id")
    return rid if isinstance(rid, str) else uuid.uuid4().hex
