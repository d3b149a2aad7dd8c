"""The one error root and its families. Pure: no web framework is imported here, so a
pure module can raise these without loading FastAPI (``sluice.core.handlers`` turns them
into JSON responses).

Every service raises children of these. The handler answers
``{"error": {"code": ..., "message": ...}}``; the V2 inference endpoints keep the
Open Inference Protocol's own ``{"error": "..."}`` shape.
"""

from __future__ import annotations

from typing import Any, ClassVar


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


class MalformedJson(InvalidInput):
    """The body is not JSON at all (not UTF-8, cut short, not a JSON document): 400, the
    same answer from every service and route, whether or not the route parses it itself."""

    status = 400
    code = "malformed_json"


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
