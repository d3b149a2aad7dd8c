"""Liveness and readiness: /livez answers while the process serves; /readyz asks a check.

Kubernetes probes use /livez and /readyz; the V2 protocol's own health routes live in
the model server and call the same readiness check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from sluice.core.handlers import json_response

ReadyCheck = Callable[[], Awaitable[str | None]]
"""Returns None when ready, else a short reason why not."""


def health_routes(ready: ReadyCheck) -> tuple[Callable[[Request], Awaitable[Response]], ...]:
    """The (livez, readyz) endpoint pair for ``ready``."""

    async def livez(_: Request) -> Response:
        return json_response(200, {"status": "live"})

    async def readyz(_: Request) -> Response:
        reason = await ready()
        if reason is None:
            return json_response(200, {"status": "ready"})
        return json_response(503, {"status": "not ready", "reason": reason})

    return livez, readyz
