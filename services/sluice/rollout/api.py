"""The controller's admin API: declare, read and steer rollouts. Parse, call, shape.

Every call needs ``Authorization: Bearer <SLUICE_ADMIN_TOKEN>``, checked before a body is
read; a body is read incrementally up to ``admin_max_body_bytes`` (413 past it). In a
cluster the resources live in Kubernetes: reading works here, changes go through kubectl
(``kubectl apply``, ``kubectl sluice``) and are refused with 409.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import SecretStr
from redis.exceptions import RedisError

from sluice.core.auth import admin_role, read_object, require
from sluice.core.errors import Unavailable
from sluice.rollout.backends import RedisRolloutSource, RolloutSource
from sluice.rollout.errors import DeclaredElsewhere, InvalidRollout, RolloutNotFound
from sluice.rollout.plan import ACTIONS
from sluice.rollout.resource import ACTION_ANNOTATION, Rollout, RolloutError, document, parse


def admin_router(source: RolloutSource, token: SecretStr | None, max_body_bytes: int) -> APIRouter:
    router = APIRouter(
        prefix="/admin/v1", dependencies=[Depends(require(admin_role(token)))], tags=["admin"]
    )

    def local() -> RedisRolloutSource:
        if not isinstance(source, RedisRolloutSource):
            raise DeclaredElsewhere(
                "rollouts are Kubernetes resources here: use kubectl apply / kubectl sluice"
            )
        return source

    async def find(name: str) -> Rollout:
        rollouts: list[Rollout] = await redis(source.list())
        for rollout in rollouts:
            if rollout.name == name:
                return rollout
        raise RolloutNotFound(f"no rollout named {name!r}")

    @router.get("/rollouts")
    async def list_rollouts() -> dict[str, Any]:
        return {"rollouts": [document(r) for r in await redis(source.list())]}

    @router.get("/rollouts/{name}")
    async def get_rollout(name: str) -> dict[str, Any]:
        return document(await find(name))

    @router.get("/rollouts/{name}/events")
    async def events(name: str) -> dict[str, Any]:
        await find(name)
        return {"name": name, "events": await redis(local().events(name))}

    @router.put("/rollouts/{name}")
    async def put_rollout(name: str, request: Request) -> dict[str, Any]:
        """Declare or change a rollout (the whole resource, as YAML would give it)."""
        body = await read_object(request, max_body_bytes)
        store = local()
        try:
            rollout = parse(body)
        except RolloutError as exc:
            raise InvalidRollout(str(exc)) from None
        if rollout.name != name:
            raise InvalidRollout(f"metadata.name {rollout.name!r} is not {name!r} (the path)")
        for other in await redis(store.list()):
            if other.name != name and other.spec.model == rollout.spec.model:
                raise InvalidRollout(
                    f"model {rollout.spec.model!r} already has a rollout: {other.name!r}"
                )
        return document(await redis(store.put(rollout)))

    @router.delete("/rollouts/{name}")
    async def delete_rollout(name: str) -> dict[str, Any]:
        """Forget the rollout; the route stays as it is."""
        if not await redis(local().delete(name)):
            raise RolloutNotFound(f"no rollout named {name!r}")
        return {"name": name, "deleted": True}

    @router.post("/rollouts/{name}/actions", status_code=202)
    async def act(name: str, request: Request) -> dict[str, Any]:
        """Ask for ``promote``, ``promote-full``, ``abort``, ``pause``, ``resume``, ``retry``,
        ``set-weight`` (with ``weight``) or ``skip-analysis``; carried out at the next tick."""
        body = await read_object(request, max_body_bytes)
        store = local()
        action = body.get("action")
        if action not in ACTIONS:
            raise InvalidRollout(f"action {action!r} is not one of {', '.join(ACTIONS)}")
        weight = body.get("weight")
        if action == "set-weight" and (
            not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 100
        ):
            raise InvalidRollout("set-weight needs weight, an integer 0-100")
        await find(name)
        doc = {"action": action, "id": uuid.uuid4().hex, "weight": weight}
        await redis(store.annotate(name, ACTION_ANNOTATION, orjson.dumps(doc).decode()))
        return {"name": name, **doc}

    return router


async def redis(call: Any) -> Any:
    try:
        return await call
    except (RedisError, OSError) as exc:
        raise Unavailable(f"the rollout store is unavailable: {type(exc).__name__}") from None
