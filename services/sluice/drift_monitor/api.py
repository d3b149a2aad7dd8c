"""HTTP endpoints: parse the request, call the DriftService, shape the response.

``POST /v1/feedback`` needs ``Authorization: Bearer <SLUICE_FEEDBACK_TOKEN>`` (or, with
that unset, ``SLUICE_ADMIN_TOKEN``; see ``sluice.core.auth``), checked before the body is
read; the body is read incrementally up to ``max_body_bytes`` (413 past it).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from sluice.core.auth import Role, body_schema, read_model, require
from sluice.core.errors import PayloadTooLarge
from sluice.core.handlers import json_response
from sluice.drift_monitor.errors import InvalidFeedback
from sluice.drift_monitor.service import DriftService


class Feedback(BaseModel):
    """True labels for logged predictions, column-oriented like the prediction log."""

    model_config = ConfigDict(extra="forbid")

    model: str
    ids: list[str] = Field(description="Row ids: the request id, or rid/i for row i of a batch.")
    labels: list[str | int | float | bool | None]


def add_routes(
    app: FastAPI,
    service: DriftService,
    max_feedback_items: int,
    *,
    feedback_role: Role,
    max_body_bytes: int,
) -> None:
    """Mount the drift monitor's endpoints for ``service`` on ``app``; writes need
    ``feedback_role``'s token."""

    @app.get("/v1/drift/{model}")
    async def drift(model: str) -> Response:
        return json_response(200, await service.drift(model))

    @app.get("/v1/analysis/{model}")
    async def analysis(
        model: str,
        candidate: Annotated[str, Query(min_length=1)],
        stable: Annotated[str, Query(min_length=1)],
    ) -> Response:
        return json_response(200, await service.analysis(model, candidate, stable))

    @app.post(
        "/v1/feedback",
        dependencies=[Depends(require(feedback_role))],
        openapi_extra=body_schema(Feedback),
    )
    async def feedback(request: Request) -> Response:
        body = await read_model(request, Feedback, max_body_bytes)
        if len(body.ids) != len(body.labels):
            raise InvalidFeedback(
                f"ids ({len(body.ids)}) and labels ({len(body.labels)}) must have the same length"
            )
        if len(body.ids) > max_feedback_items:
            raise PayloadTooLarge(
                f"{len(body.ids)} labels in one request; at most {max_feedback_items} "
                "(SLUICE_DRIFT_MONITOR_MAX_FEEDBACK_ITEMS)"
            )
        result: dict[str, Any] = await service.submit_feedback(body.model, body.ids, body.labels)
        return json_response(200, result)

    @app.get("/v1/models")
    async def models() -> Response:
        return json_response(200, {"models": await service.models()})
