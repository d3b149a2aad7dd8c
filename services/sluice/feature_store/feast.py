"""Feast's feature server on Feast's paths, so Feast's own clients work unchanged.

==============================  ===========================================================
``POST /get-online-features``   Feast's request and response (its ``remote`` online store
                                reads through it)
``POST /push``                  ``{"push_source_name", "df": {column: [values]}, "to"}``:
                                a push source is named after its view; ``to`` is
                                ``online`` (Sluice keeps no offline store to push to)
``POST /write-to-online-store`` ``{"feature_view_name", "df": {column: [values]}}``: what
                                the ``remote`` store's ``write_to_online_store`` sends
==============================  ===========================================================

Both writes go through the same service call as ``/v1/features/push`` (every row validated
before any is stored; newer wins) and need ``Authorization: Bearer
<SLUICE_FEATURE_WRITE_TOKEN>``. ``df`` is columnar as pandas' ``DataFrame(df)`` reads it;
the ``created`` column Feast's client adds is ignored, any other unknown column refused.
Both answer 200 with an empty body, as Feast's server does.

Errors on these paths are Feast's: a JSON string holding ``{"module", "class", "message"}``
(``FeastError.to_error_detail``), which Feast's client turns back into its typed exception
(``FeastError.from_error_detail``); the status stays ours (404 unknown view, 422 bad input,
401 no token, 413 too big, 503 Redis away).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from sluice.core.auth import authorize
from sluice.core.errors import InvalidInput, SluiceError, Unauthorized

# the shared body reader and response shaping of our own routes
from sluice.feature_store.api import EPOCH, roles
from sluice.feature_store.api import _body as body_of
from sluice.feature_store.api import _columns as columns
from sluice.feature_store.api import _json as json_ok
from sluice.feature_store.errors import UnknownFeature, UnknownView
from sluice.feature_store.retrieval import PRESENT
from sluice.feature_store.service import FeatureService

Endpoint = Callable[[Request], Awaitable[Response]]
FEAST_ERRORS = "feast.errors"
CREATED = "created"
"""The created-timestamp column Feast's client sends with every row; not stored here."""


class UnknownPushSource(UnknownView):
    """A push names a push source (a view, here) that is not registered."""

    code = "unknown_push_source"


def feast_class(exc: SluiceError) -> str:
    """The ``feast.errors`` class a Feast client should raise for ``exc``.

    >>> [feast_class(e("x")) for e in (UnknownView, Unauthorized, InvalidInput)]
    ['FeatureViewNotFoundException', 'FeastPermissionError', 'FeastError']
    """
    if isinstance(exc, UnknownPushSource):
        return "PushSourceNotFoundException"
    if isinstance(exc, UnknownView):
        return "FeatureViewNotFoundException"
    if isinstance(exc, UnknownFeature):
        return "FeastObjectNotFoundException"
    if isinstance(exc, Unauthorized):
        return "FeastPermissionError"
    return "FeastError"


def feast_error(exc: SluiceError) -> Response:
    """``exc`` as Feast's server answers errors: its detail document, JSON-encoded as a string."""
    detail = json.dumps({"module": FEAST_ERRORS, "class": feast_class(exc), "message": exc.message})
    return Response(orjson.dumps(detail), status_code=exc.status, media_type="application/json")


def feast_router(service: FeatureService) -> APIRouter:
    """Feast's three paths as plain routes (no per-request dependency machinery); the same
    tokens as our own paths (``core.auth``): reads as online reads, writes as pushes."""
    limit = service.settings.max_body_bytes
    reader, writer = roles(service.settings)

    async def get_online_features(request: Request) -> Response:
        authorize(reader, request.headers.get("authorization"))
        body = await body_of(request, limit)
        if body.get("feature_service") is not None:
            raise InvalidInput("feature_service: feature services are not supported; "
                               "list the features as 'view:feature'")  # fmt: skip
        full = body.get("full_feature_names", False)
        if not isinstance(full, bool):
            raise InvalidInput("full_feature_names: expected true or false")
        result = await service.get_online(body.get("features"), body.get("entities"))
        names = feast_names(result.feature_refs, full)
        n = len(result.entity_values)
        entity_column = {
            "values": result.entity_values,
            "statuses": [PRESENT] * n,
            "event_timestamps": [EPOCH] * n,
        }
        return json_ok(
            {
                "metadata": {"feature_names": [result.join_key, *names]},
                "results": [entity_column, *columns(result, EPOCH)],
            }
        )

    async def push(request: Request) -> Response:
        authorize(writer, request.headers.get("authorization"))
        body = await body_of(request, limit)
        name = _text(body, "push_source_name")
        to = body.get("to", "online")
        if to != "online":
            raise InvalidInput(f"to: {to!r} is not supported; Sluice pushes to 'online' only")
        await _write(service, name, body, UnknownPushSource)
        return Response(status_code=200)

    async def write_to_online_store(request: Request) -> Response:
        authorize(writer, request.headers.get("authorization"))
        body = await body_of(request, limit)
        await _write(service, _text(body, "feature_view_name"), body, UnknownView)
        return Response(status_code=200)

    router = APIRouter(tags=["feast"])
    for path, endpoint in (
        ("/get-online-features", get_online_features),
        ("/push", push),
        ("/write-to-online-store", write_to_online_store),
    ):
        router.add_route(path, _feast_errors(endpoint), methods=["POST"])
    return router


async def _write(
    service: FeatureService, name: str, body: dict[str, Any], unknown: type[UnknownView]
) -> None:
    if body.get("allow_registry_cache", True) is False or name not in service.catalog.views:
        await service.store.refresh()  # a view registered a moment ago
    if name not in service.catalog.views:
        known = ", ".join(sorted(service.catalog.views)) or "none"
        raise unknown(f"feature view {name!r} is not registered (views: {known})")
    await service.push({"view": name, "rows": rows(body.get("df"))})


def rows(df: Any) -> list[dict[str, Any]]:
    """Feast's columnar ``df`` as rows, without the ``created`` column.

    >>> rows({"id": ["a", "b"], "x": [1, 2], "created": [None, None]})
    [{'id': 'a', 'x': 1}, {'id': 'b', 'x': 2}]
    """
    if not isinstance(df, dict) or not df:
        raise InvalidInput("df: expected an object of columns, {column: [values, ...]}")
    lengths = set()
    for column, values in df.items():
        if not isinstance(values, list):
            raise InvalidInput(f"df.{column}: expected a list of values")
        lengths.add(len(values))
    if len(lengths) != 1:
        raise InvalidInput(f"df: every column needs the same number of values, not {lengths}")
    kept = [(column, values) for column, values in df.items() if column != CREATED]
    n = lengths.pop()
    return [{column: values[i] for column, values in kept} for i in range(n)]


def feast_names(refs: list[str], full: bool) -> list[str]:
    """Feast names features ``feature`` or, with full_feature_names, ``view__feature``."""
    if full:
        return [ref.replace(":", "__", 1) for ref in refs]
    names = [ref.split(":", 1)[1] for ref in refs]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise InvalidInput(
                f"features: {name!r} is in more than one view; set full_feature_names to true"
            )
    return names


def _text(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{field}: expected the name of a feature view")
    return value


def _feast_errors(endpoint: Endpoint) -> Endpoint:
    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except SluiceError as exc:
            return feast_error(exc)

    wrapped.__name__ = endpoint.__name__
    return wrapped
