"""The one error root and its families; one handler turns them into JSON responses.

Every service raises children of these. The handler answers
``{"error": {"code": ..., "message": ...}}``; the V2 inference endpoints keep the
Open Inference Protocol's own ``{"error": "..."}`` shape (see ``v2_error_response``).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

log = logging.getLogger(__name__)


class SluiceError(Exception):
    """Root of every error Sluice raises on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(SluiceError):
    """The caller sent something we cannot use; nothing was changed."""

    status = 422
    code = "invalid_input"


class PayloadTooLarge(InvalidInput):
    """The body or the batch is over a configured limit."""

    status = 413
    code = "payload_too_large"


class Unauthorized(SluiceError):
    """A token or API key is missing or wrong."""

    status = 401
    code = "unauthorized"


class NotFound(SluiceError):
    """The named thing (model, version, view, ...) does not exist."""

    status = 404
    code = "not_found"


class Conflict(SluiceError):
    """The request clashes with what is stored (e.g. an immutable version exists)."""

    status = 409
    code = "conflict"


class Unavailable(SluiceError):
    """A dependency (Redis, an upstream, the model) cannot answer right now."""

    status = 503
    code = "unavailable"


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON response serialised with orjson (numpy scalars and arrays allowed)."""
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def error_body(exc: SluiceError) -> dict[str, Any]:
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.details:
        body["details"] = exc.details
    return {"error": body}


def v2_error_response(exc: SluiceError) -> Response:
    """The Open Inference Protocol's error shape: ``{"error": "message"}``."""
    return json_response(exc.status, {"error": exc.message})


def install_error_handlers(app: FastAPI) -> None:
    """Map every error to JSON: ours by family, FastAPI's validation errors to 422, the rest 500."""

    async def on_sluice_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, SluiceError)
        return json_response(exc.status, error_body(exc))

    async def on_validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        return json_response(
            422, {"error": {"code": "invalid_input", "message": "; ".join(problems)}}
        )

    async def on_http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if exc.status_code == 400 and exc.__cause__ is not None:
            # FastAPI's "There was an error parsing the body" says not why: not UTF-8, too deep
            message = f"{message}: {exc.__cause__}"
        return json_response(
            exc.status_code,
            {"error": {"code": code, "message": message}},
            headers=dict(exc.headers) if exc.headers else None,
        )

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return json_response(
            500, {"error": {"code": "internal", "message": "internal server error"}}
        )

    app.add_exception_handler(SluiceError, on_sluice_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
