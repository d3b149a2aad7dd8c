"""HTTP endpoints: parse the request, call the ModelService, shape the response.

Open Inference Protocol (V2) REST, with Triton's binary tensor data extension, and a
friendly KServe-V1 style ``:predict``. The hot paths are plain Starlette endpoints that
parse bodies with orjson: no pydantic model sits between the bytes and the numpy arrays.
V2 errors are ``{"error": "message"}``; V1 errors use the core shape.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from sluice import __version__
from sluice.core.errors import InvalidInput, SluiceError
from sluice.core.handlers import error_body, json_response, parse_json, v2_error_response
from sluice.core.http import HotRoutes, HttpMetrics, ShortcutApp, read_body
from sluice.model_server.backends import LABEL, PROBABILITIES, VALUE
from sluice.model_server.codec import CodecError
from sluice.model_server.errors import ModelNotFound
from sluice.model_server.explanations import Explanations
from sluice.model_server.protocol import (
    HEADER_LENGTH,
    infer_response,
    parse_infer_request,
    select_outputs,
    split_body,
)
from sluice.model_server.service import ModelService

Endpoint = Callable[[Request], Awaitable[Response]]
SERVER_NAME = "sluice-model-server"
EXTENSIONS = ["binary_tensor_data"]


def add_routes(
    app: ShortcutApp,
    service: ModelService,
    max_body_bytes: int,
    http: HttpMetrics,
    explanations: Explanations | None = None,
) -> None:
    """Mount the V2 and V1 endpoints for ``service`` on ``app``; the inference POSTs are
    also ``app``'s shortcut (answered before FastAPI's layers, counted in ``http``)."""

    async def server_live(_: Request) -> Response:
        return json_response(200, {"live": True})

    async def server_ready(_: Request) -> Response:
        return json_response(200 if service.ready else 503, {"ready": service.ready})

    async def server_metadata(_: Request) -> Response:
        return json_response(
            200, {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}
        )

    async def model_metadata(request: Request) -> Response:
        service.check_target(**request.path_params)
        return json_response(200, service.metadata())

    async def model_ready(request: Request) -> Response:
        service.check_target(**request.path_params)
        return json_response(
            200 if service.ready else 503, {"name": service.card.model, "ready": service.ready}
        )

    async def infer(request: Request) -> Response:
        service.check_target(**request.path_params)
        service.runtime()  # 503 before reading a body the model cannot answer yet
        body = await read_body(request, max_body_bytes)
        try:
            head, tail = split_body(body, request.headers.get(HEADER_LENGTH))
            parsed = parse_infer_request(parse_json(head), tail)
            wanted = select_outputs(parsed, service.outputs)
        except CodecError as exc:
            raise InvalidInput(str(exc)) from None
        outputs = await service.infer(parsed.inputs)
        request_id = parsed.id or _request_id(request)
        doc, binary = infer_response(
            service.card.model, service.card.version, request_id, outputs, wanted
        )
        if not binary:
            return json_response(200, doc)
        head = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
        return Response(
            head + binary,
            media_type="application/octet-stream",
            headers={HEADER_LENGTH: str(len(head))},
        )

    async def v1_model(request: Request) -> Response:
        service.check_target(request.path_params["model"])
        return json_response(200, {"name": service.card.model, "ready": service.ready})

    async def v1_predict(request: Request) -> Response:
        service.check_target(request.path_params["model"])
        service.runtime()
        doc = parse_json(await read_body(request, max_body_bytes))
        if not isinstance(doc, dict) or "instances" not in doc:
            raise InvalidInput('the body must be {"instances": [{feature: value, ...}, ...]}')
        outputs = await service.predict(doc["instances"])
        if service.regression:
            predictions = [{"value": v} for v in outputs[VALUE].reshape(-1).tolist()]
        else:
            classes = service.card.classes
            labels, probabilities = outputs[LABEL].tolist(), outputs[PROBABILITIES].tolist()
            predictions = [
                {"label": _label(label), "probabilities": dict(zip(classes, row, strict=True))}
                for label, row in zip(labels, probabilities, strict=True)
            ]
        return json_response(
            200,
            {
                "predictions": predictions,
                "model_name": service.card.model,
                "model_version": service.card.version,
            },
        )

    async def v1_explain(request: Request) -> Response:
        service.check_target(request.path_params["model"])
        service.runtime()
        if explanations is None:
            raise ModelNotFound("this server does not explain predictions")
        doc = parse_json(await read_body(request, max_body_bytes))
        if not isinstance(doc, dict) or "instances" not in doc:
            raise InvalidInput('the body must be {"instances": [{feature: value, ...}, ...]}')
        return json_response(200, await explanations.explain(doc["instances"]))

    v2: list[tuple[str, Endpoint, str]] = [
        ("/v2/models/{model}/infer", infer, "POST"),
        ("/v2/models/{model}/versions/{version}/infer", infer, "POST"),
        ("/v2/health/live", server_live, "GET"),
        ("/v2/health/ready", server_ready, "GET"),
        ("/v2", server_metadata, "GET"),
        ("/v2/models/{model}", model_metadata, "GET"),
        ("/v2/models/{model}/versions/{version}", model_metadata, "GET"),
        ("/v2/models/{model}/ready", model_ready, "GET"),
        ("/v2/models/{model}/versions/{version}/ready", model_ready, "GET"),
    ]
    hot: list[tuple[str, Endpoint]] = [("/v1/models/{model}:predict", v1_predict)]
    app.add_route("/v1/models/{model}:predict", v1_predict, methods=["POST"])
    app.add_route("/v1/models/{model}:explain", v1_explain, methods=["POST"])
    for path, endpoint, method in v2:
        app.add_route(path, _v2_errors(endpoint), methods=[method])
        if endpoint is infer:
            hot.append((path, _v2_errors(endpoint)))
    app.add_route("/v1/models/{model}", v1_model, methods=["GET"])
    app.shortcut = HotRoutes(hot, http, _error)


def _error(exc: SluiceError, template: str) -> Response:
    """An error in the shape of the route's protocol (V2: ``{"error": "message"}``)."""
    if template.startswith("/v2/"):
        return v2_error_response(exc)
    return json_response(exc.status, error_body(exc))


def _v2_errors(endpoint: Endpoint) -> Endpoint:
    """Answer our errors in the V2 shape, ``{"error": "message"}``."""

    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except SluiceError as exc:
            return v2_error_response(exc)

    return wrapped


def _request_id(request: Request) -> str:
    state: dict[str, Any] = request.scope.get("state", {})
    rid = state.get("request_id")
    return rid if isinstance(rid, str) else uuid.uuid4().hex


def _label(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
