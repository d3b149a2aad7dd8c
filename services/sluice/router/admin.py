"""The admin API: read and change the routing table, read shadow disagreements.

Every call needs ``Authorization: Bearer <SLUICE_ADMIN_TOKEN>``; with no token configured
the admin API refuses everything. The token is checked before a body is read, and a body
is read incrementally up to ``admin_max_body_bytes`` (413 past it; ``sluice.core.auth``).
A change is validated in full before it is stored; a refused change leaves the table as it
was. The replica that took the change applies it at once; the others within a second
(pub/sub, backed by the periodic re-read).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, SecretStr
from redis.exceptions import RedisError

from sluice.core.auth import admin_role, body_schema, read_object, require
from sluice.core.errors import Unavailable
from sluice.core.routes import InvalidRoute, Route, RouteWriter, RoutingStore
from sluice.router.backends import ShadowSamples
from sluice.router.errors import ModelNotRouted
from sluice.router.service import RouterService

log = logging.getLogger(__name__)

T = TypeVar("T")


class RouteBody(BaseModel):
    """A route as ``PUT /admin/v1/routes/{model}`` takes it (validated in full by
    ``sluice.core.routes``), plus ``if_revision``; documented here for OpenAPI only."""

    model_config = ConfigDict(extra="allow")

    if_revision: int | None = None


def show(route: Route, applied: Route | None) -> dict[str, Any]:
    """A route as the API and ``sluice route show`` present it."""
    doc = route.model_dump(mode="json")
    doc["weights"] = route.weights()
    doc["applied_revision"] = applied.revision if applied else None
    return doc


def admin_router(
    service: RouterService,
    store: RoutingStore,
    samples: ShadowSamples,
    token: SecretStr | None,
    max_body_bytes: int,
) -> APIRouter:
    writer = RouteWriter(store)
    router = APIRouter(
        prefix="/admin/v1", dependencies=[Depends(require(admin_role(token)))], tags=["admin"]
    )

    async def current(model: str) -> Route:
        routes = await redis(store.load())
        if model not in routes:
            raise ModelNotRouted(f"model {model!r} has no route")
        return routes[model]

    @router.get("/routes")
    async def list_routes() -> dict[str, Any]:
        routes = await redis(store.load())
        return {"routes": {m: show(r, service.table.get(m)) for m, r in sorted(routes.items())}}

    @router.get("/routes/{model}")
    async def get_route(model: str) -> dict[str, Any]:
        return show(await current(model), service.table.get(model))

    @router.put("/routes/{model}", openapi_extra=body_schema(RouteBody))
    async def put_route(model: str, request: Request) -> dict[str, Any]:
        """Replace the model's route. ``if_revision`` (optional) refuses the change when
        the stored route is at another revision (409)."""
        body = await read_object(request, max_body_bytes)
        if_revision = body.pop("if_revision", None)
        if if_revision is not None and not isinstance(if_revision, int):
            raise InvalidRoute("if_revision must be an integer")
        stored = await redis(writer.put(model, body, if_revision))
        await redis(service.watcher.reload())
        return show(stored, service.table.get(model))

    @router.delete("/routes/{model}")
    async def delete_route(
        model: str, if_revision: Annotated[int | None, Query()] = None
    ) -> dict[str, Any]:
        await current(model)
        revision = await redis(writer.delete(model, if_revision))
        await redis(service.watcher.reload())
        return {"model": model, "deleted": True, "revision": revision}

    @router.get("/shadow/{model}/diffs")
    async def shadow_diffs(
        model: str, limit: Annotated[int, Query(ge=1, le=1000)] = 20
    ) -> dict[str, Any]:
        """The newest disagreements between stable and candidate (inputs, both outputs)."""
        return {"model": model, "disagreements": await redis(samples.newest(model, limit))}

    return router


async def redis(call: Awaitable[T]) -> T:
    """Await a Redis-backed call; Redis being away is a 503, not a 500. The answer names
    the kind of failure only: Redis's address stays in the log."""
    try:
        return await call
    except (RedisError, OSError) as exc:
        log.warning("admin call failed, Redis is unavailable: %s", exc)
        raise Unavailable(f"Redis is unavailable ({type(exc).__name__})") from None
