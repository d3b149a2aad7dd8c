"""HTTP routes: parse the request, call the service, shape the response; nothing else.

Bodies are parsed with orjson rather than pydantic models: the online read is on a
sub-millisecond path, and the service validates every field with messages naming it.

Pushes need ``Authorization: Bearer <SLUICE_FEATURE_WRITE_TOKEN>`` (or, with that unset,
``SLUICE_ADMIN_TOKEN``); reads need ``SLUICE_FEATURE_READ_TOKEN`` when it is set and are
open otherwise (``sluice.core.auth``). The token is checked before the body is read, and
the body is read incrementally up to ``max_body_bytes`` (413 past it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluice.core.auth import (
    FEATURE_READ_TOKEN,
    FEATURE_WRITE_TOKEN,
    Role,
    authorize,
    reader_role,
    writer_role,
)
from sluice.core.errors import InvalidInput
from sluice.core.handlers import parse_json
from sluice.core.http import read_body
from sluice.feature_store.definitions import FeatureView
from sluice.feature_store.keys import effective_watermark
from sluice.feature_store.retrieval import OnlineResult
from sluice.feature_store.service import FeatureService
from sluice.feature_store.settings import Settings

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def roles(settings: Settings) -> tuple[Role, Role]:
    """Who may read online features and who may write them, on our paths and Feast's."""
    reader = reader_role("online feature reads", FEATURE_READ_TOKEN, settings.feature_read_token)
    writer = writer_role(
        "feature pushes", FEATURE_WRITE_TOKEN, settings.feature_write_token, settings.admin_token
    )
    return reader, writer


def routes(service: FeatureService) -> list[Route]:
    """Plain Starlette routes: they skip FastAPI's per-request dependency machinery, which
    costs more than the rest of a one-entity lookup (bench/results/feature_store.md)."""
    limit = service.settings.max_body_bytes
    reader, writer = roles(service.settings)

    async def list_views(request: Request) -> Response:
        """Every registered view: entity, features, ttl, materialised-until, freshest value."""
        authorize(reader, request.headers.get("authorization"))
        catalog = service.catalog
        if not catalog.loaded:
            catalog = await service.store.refresh()
        body = [
            _view_body(
                view,
                effective_watermark(name, catalog.watermarks),
                catalog.freshness_us.get(name),
            )
            for name, view in sorted(catalog.views.items())
        ]
        return _json({"views": body})

    async def get_online(request: Request) -> Response:
        """``{"features": ["view:feature" | "view:*"], "entities": {key: [...]}}``."""
        authorize(reader, request.headers.get("authorization"))
        body = await _body(request, limit)
        result = await service.get_online(body.get("features"), body.get("entities"))
        return _json(
            {"metadata": {"feature_names": result.feature_refs}, "results": _columns(result, None)}
        )

    async def push(request: Request) -> Response:
        """``{"view": NAME, "rows": [{<entity key>, <features>, "event_timestamp"}]}``."""
        authorize(writer, request.headers.get("authorization"))
        view, result = await service.push(await _body(request, limit))
        return _json(
            {"view": view.name, "rows": result.written + result.skipped,
             "written": result.written, "skipped": result.skipped}
        )  # fmt: skip

    return [
        Route("/v1/features/views", list_views, methods=["GET"]),
        Route("/v1/features/get-online", get_online, methods=["POST"]),
        Route("/v1/features/push", push, methods=["POST"]),
    ]


def _columns(result: OnlineResult, missing_time: datetime | None) -> list[dict[str, Any]]:
    """Per feature: values, statuses, event timestamps. A view's columns share one timestamp
    list, serialised once (2,000 datetimes for 100 entities x 20 features cost ~0.3 ms)."""
    serialised: dict[int, orjson.Fragment] = {}
    columns = []
    for values, statuses, times in zip(
        result.values, result.statuses, result.event_timestamps, strict=True
    ):
        stamps = serialised.get(id(times))
        if stamps is None:
            moments = [missing_time if t is None else datetime.fromtimestamp(t, UTC) for t in times]
            stamps = serialised[id(times)] = orjson.Fragment(
                orjson.dumps(moments, option=orjson.OPT_UTC_Z)
            )
        columns.append({"values": values, "statuses": statuses, "event_timestamps": stamps})
    return columns


def _view_body(view: FeatureView, until: float | None, freshest_us: int | None) -> dict[str, Any]:
    return {
        "name": view.name,
        "description": view.description,
        "entity": view.entity.model_dump(),
        "features": [f.model_dump() for f in view.features],
        "ttl_seconds": view.ttl,
        "source": {**view.source.model_dump(), "format": view.source.file_format},
        "schema_id": view.schema_id,
        "materialized_until": None if until is None else datetime.fromtimestamp(until, UTC),
        "freshest_event_timestamp": (
            None if freshest_us is None else datetime.fromtimestamp(freshest_us / 1e6, UTC)
        ),
    }


async def _body(request: Request, limit: int) -> dict[str, Any]:
    body = parse_json(await read_body(request, limit))
    if not isinstance(body, dict):
        raise InvalidInput("request body must be a JSON object")
    return body


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body, option=orjson.OPT_UTC_Z), media_type="application/json")
