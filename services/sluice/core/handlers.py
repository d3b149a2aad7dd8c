"""Our errors as HTTP responses: the JSON shapes, and the handlers every FastAPI app installs.

The error classes live in :mod:`sluice.core.errors` (pure, no web framework); this module is
where they meet Starlette. Bodies are ``{"error": {"code": ..., "message": ...}}``; the V2
inference endpoints keep the Open Inference Protocol's ``{"error": "..."}``.

A body that is not JSON at all is one answer everywhere: 400 ``malformed_json``
(:class:`~sluice.core.errors.MalformedJson`), whether the route parses it itself or FastAPI
does for a pydantic body.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from sluice.core.errors import MalformedJson, SluiceError

log = logging.getLogger(__name__)

FASTAPI_PARSE_ERROR = "There was an error parsing the body"
"""FastAPI's 400 detail for a JSON body it could not decode (e.g. not UTF-8)."""


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON response serialised with orjson (numpy scalars and arrays allowed)."""
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def error_body(exc: SluiceError) -> dict[str, Any]:
    """``{"error": {"code", "message", "details"?}}`` for one of our errors."""
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.details:
        body["details"] = exc.details
    return {"error": body}


def error_response(exc: SluiceError) -> Response:
    """One of our errors in the core shape, with its status."""
    return json_response(exc.status, error_body(exc))


def v2_error_response(exc: SluiceError) -> Response:
    """The Open Inference Protocol's error shape: ``{"error": "message"}``."""
    return json_response(exc.status, {"error": exc.message})


def parse_json(raw: bytes) -> Any:
    """A request body as JSON; :class:`MalformedJson` (400) naming the problem if it is not.

    >>> parse_json(b'{"a": 1}')
    {'a': 1}
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(f"the body is not valid JSON: {exc}") from None


def install_error_handlers(app: FastAPI) -> None:
    """Map every error to JSON: ours by family, a body that is not JSON to 400
    ``malformed_json``, FastAPI's other validation errors to 422, the rest 500."""

    async def on_sluice_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, SluiceError)
        return error_response(exc)

    async def on_validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        for err in errors:
            if err.get("type") == "json_invalid":
                detail = (err.get("ctx") or {}).get("error", err["msg"])
                where = err["loc"][-1] if err.get("loc") else "?"
                return error_response(
                    MalformedJson(f"the body is not valid JSON: {detail} at byte {where}")
                )
        problems = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in errors]
        return json_response(
            422, {"error": {"code": "invalid_input", "message": "; ".join(problems)}}
        )

    async def on_http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400 and exc.detail == FASTAPI_PARSE_ERROR:
            return error_response(MalformedJson("the body is not valid JSON (not UTF-8 text)"))
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return json_response(
            exc.status_code,
            {"error": {"code": code, "message": str(exc.detail)}},
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
