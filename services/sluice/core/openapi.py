"""Every service's OpenAPI document, served at ``/openapi.json``.

FastAPI generates operations only for its own ``APIRoute``s; the hot paths (inference,
feature reads, health, metrics) are plain Starlette routes it knows nothing of. Their path
items are written here once, shared by every service that serves them, and
:func:`install_openapi` adds them to FastAPI's generated document:

============================  ==========================================================
:data:`V2_PATHS`              the Open Inference Protocol's REST routes (health, metadata,
                              infer), with its schemas (``inference_request``, ...)
:func:`v1_paths`              the KServe-V1 style ``/v1/models/{model}[:predict|:explain]``
:data:`OPS_PATHS`             ``/livez``, ``/readyz``, ``/metrics`` and ``/openapi.json``
============================  ==========================================================

A service with plain routes of its own passes their path items too (the feature store's
live in ``feature_store/openapi.py``). Errors: the V2 routes answer
``{"error": "message"}`` (:data:`V2_ERROR`), every other route the core shape
``{"error": {"code", "message", "details"?}}`` (:data:`ERROR`); FastAPI's default
``HTTPValidationError`` is replaced by the core shape, which is what the handler sends.
:func:`undocumented` lists the routes an app serves that its document does not describe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import iter_route_contexts
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

OPENAPI_URL = "/openapi.json"
Operation = dict[str, Any]
PathItems = dict[str, dict[str, Operation]]
"""path template -> lower-case method -> OpenAPI operation object."""


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": dict(schema)}}


def respond(description: str, schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A response object, JSON with ``schema`` when given."""
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = json_content(schema)
    return out


def body(schema: Mapping[str, Any], description: str = "") -> dict[str, Any]:
    """A required JSON request body."""
    out: dict[str, Any] = {"required": True, "content": json_content(schema)}
    if description:
        out["description"] = description
    return out


def path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


# --- shared schemas --------------------------------------------------------------------------

PARAMETERS = {
    "type": "object",
    "description": "Free-form parameters (the protocol's `parameters` object).",
    "additionalProperties": True,
}
DATATYPES = [
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip
TENSOR_DATA = {
    "description": "The tensor's elements, flattened row-major (nested lists are accepted).",
    "type": "array",
    "items": {},
}
SHAPE = {"type": "array", "items": {"type": "integer"}}
"""Metadata shapes: -1 is a dimension of any size."""
REQUEST_SHAPE = {"type": "array", "items": {"type": "integer", "minimum": 0}}
"""A request's (and a response's) tensor has every dimension known."""

ERROR = {
    "type": "object",
    "description": "Sluice's error shape.",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Machine-readable, e.g. invalid_input"},
                "message": {"type": "string", "description": "Names what is wrong."},
                "details": {"type": "object", "additionalProperties": True},
            },
        }
    },
}
V2_ERROR = {
    "type": "object",
    "description": "The Open Inference Protocol's error shape.",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}

SCHEMAS: dict[str, Any] = {
    "Error": ERROR,
    # the Open Inference Protocol's REST schemas (KServe's open_inference_rest.yaml names)
    "inference_error_response": V2_ERROR,
    "parameters": PARAMETERS,
    "tensor_data": TENSOR_DATA,
    "server_live_response": {
        "type": "object",
        "required": ["live"],
        "properties": {"live": {"type": "boolean"}},
    },
    "server_ready_response": {
        "type": "object",
        "required": ["ready"],
        "properties": {"ready": {"type": "boolean"}},
    },
    "model_ready_response": {
        "type": "object",
        "required": ["name", "ready"],
        "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
    },
    "metadata_server_response": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    },
    "metadata_tensor": {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {"name": {"type": "string"}, "datatype": {"type": "string"}, "shape": SHAPE},
    },
    "metadata_model_response": {
        "type": "object",
        "required": ["name", "platform"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": ref("metadata_tensor")},
            "outputs": {"type": "array", "items": ref("metadata_tensor")},
            "parameters": ref("parameters"),
        },
    },
    "request_input": {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": REQUEST_SHAPE,
            "datatype": {"type": "string", "enum": DATATYPES},
            "parameters": ref("parameters"),
            "data": ref("tensor_data"),
        },
    },
    "request_output": {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string"}, "parameters": ref("parameters")},
    },
    "inference_request": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": ref("parameters"),
            "inputs": {"type": "array", "items": ref("request_input")},
            "outputs": {"type": "array", "items": ref("request_output")},
        },
    },
    "response_output": {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string"},
            "shape": REQUEST_SHAPE,
            "datatype": {"type": "string"},
            "parameters": ref("parameters"),
            "data": ref("tensor_data"),
        },
    },
    "inference_response": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "parameters": ref("parameters"),
            "outputs": {"type": "array", "items": ref("response_output")},
        },
    },
    # KServe-V1 style, with named features per instance
    "v1_predict_request": {
        "type": "object",
        "required": ["instances"],
        "properties": {
            "instances": {
                "type": "array",
                "items": {"type": "object", "additionalProperties": True},
                "description": "One object per row: feature name -> value.",
            }
        },
    },
    "v1_predict_response": {
        "type": "object",
        "required": ["predictions"],
        "properties": {
            "predictions": {"type": "array", "items": {"type": "object"}},
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
        },
    },
    "v1_explain_response": {"type": "object", "additionalProperties": True},
    "health": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}, "reason": {"type": "string"}},
    },
}

# --- shared path items -----------------------------------------------------------------------

MODEL = path_param("model", "The model's name.")
VERSION = path_param("version", "The model version.")
V2_FAIL = respond("An error, in the protocol's shape.", ref("inference_error_response"))
FAIL = respond("An error, in Sluice's shape.", ref("Error"))


def _v2(summary: str, ok: Mapping[str, Any], *extra: tuple[str, dict[str, Any]]) -> Operation:
    return {
        "tags": ["v2"],
        "summary": summary,
        "responses": {"200": dict(ok), **dict(extra), "default": V2_FAIL},
    }


def _infer(versioned: bool) -> Operation:
    op = _v2(
        "Inference (Open Inference Protocol).",
        {
            "description": "The outputs; application/octet-stream with Triton's binary "
            "tensor data extension (Inference-Header-Content-Length names the JSON part).",
            "content": {
                **json_content(ref("inference_response")),
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        },
    )
    op["parameters"] = [MODEL, VERSION] if versioned else [MODEL]
    op["requestBody"] = {
        "required": True,
        "content": {
            **json_content(ref("inference_request")),
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
    return op


def _with(op: Operation, *params: dict[str, Any]) -> Operation:
    return {**op, "parameters": list(params)}


_MODEL_META = _v2("Model metadata.", respond("Its metadata.", ref("metadata_model_response")))
_MODEL_READY = _v2(
    "Model readiness.",
    respond("Ready.", ref("model_ready_response")),
    ("503", respond("Not ready yet.", ref("model_ready_response"))),
)

V2_PATHS: PathItems = {
    "/v2/health/live": {
        "get": _v2("Server liveness.", respond("Live.", ref("server_live_response")))
    },
    "/v2/health/ready": {
        "get": _v2(
            "Server readiness.",
            respond("Ready.", ref("server_ready_response")),
            ("503", respond("Not ready.", ref("server_ready_response"))),
        )
    },
    "/v2": {"get": _v2("Server metadata.", respond("Metadata.", ref("metadata_server_response")))},
    "/v2/models/{model}": {"get": _with(_MODEL_META, MODEL)},
    "/v2/models/{model}/versions/{version}": {"get": _with(_MODEL_META, MODEL, VERSION)},
    "/v2/models/{model}/ready": {"get": _with(_MODEL_READY, MODEL)},
    "/v2/models/{model}/versions/{version}/ready": {"get": _with(_MODEL_READY, MODEL, VERSION)},
    "/v2/models/{model}/infer": {"post": _infer(versioned=False)},
    "/v2/models/{model}/versions/{version}/infer": {"post": _infer(versioned=True)},
}


def _v1(summary: str, ok: dict[str, Any], request: dict[str, Any] | None = None) -> Operation:
    op: Operation = {
        "tags": ["v1"],
        "summary": summary,
        "parameters": [MODEL],
        "responses": {"200": ok, "default": FAIL},
    }
    if request is not None:
        op["requestBody"] = body(request)
    return op


def v1_paths(*, explain: bool = True) -> PathItems:
    """``/v1/models/{model}`` and its ``:predict`` (and ``:explain``) POSTs."""
    paths: PathItems = {
        "/v1/models/{model}": {
            "get": _v1("Model status.", respond("The model.", ref("model_ready_response")))
        },
        "/v1/models/{model}:predict": {
            "post": _v1(
                "Predict for rows of named features.",
                respond("One prediction per instance.", ref("v1_predict_response")),
                ref("v1_predict_request"),
            )
        },
    }
    if explain:
        paths["/v1/models/{model}:explain"] = {
            "post": _v1(
                "Per-feature attributions for rows of named features.",
                respond("Attributions.", ref("v1_explain_response")),
                ref("v1_predict_request"),
            )
        }
    return paths


OPS_PATHS: PathItems = {
    "/livez": {
        "get": {
            "tags": ["health"],
            "summary": "Liveness: the process serves.",
            "responses": {"200": respond("Live.", ref("health"))},
        }
    },
    "/readyz": {
        "get": {
            "tags": ["health"],
            "summary": "Readiness: what this service needs answers.",
            "responses": {
                "200": respond("Ready.", ref("health")),
                "503": respond("Not ready; `reason` says why.", ref("health")),
            },
        }
    },
    "/metrics": {
        "get": {
            "tags": ["health"],
            "summary": "Prometheus metrics (text exposition format).",
            "responses": {
                "200": {
                    "description": "The metrics.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    OPENAPI_URL: {
        "get": {
            "tags": ["health"],
            "summary": "This document.",
            "responses": {"200": respond("OpenAPI 3.1.", {"type": "object"})},
        }
    },
}

# --- the document ----------------------------------------------------------------------------


def build_document(
    app: FastAPI,
    paths: PathItems,
    schemas: Mapping[str, Any] | None = None,
    security: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """FastAPI's document for ``app``'s APIRoutes plus ``paths``, ``schemas`` and the
    ``security`` schemes they name."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    for operations in doc.get("paths", {}).values():
        for op in operations.values():
            _our_validation_error(op)
    for path, operations in paths.items():
        doc.setdefault("paths", {}).setdefault(path, {}).update(operations)
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components.update(SCHEMAS)
    components.update(schemas or {})
    if security:
        doc["components"].setdefault("securitySchemes", {}).update(security)
    return doc


def _our_validation_error(op: Operation) -> None:
    """The core handler answers a FastAPI validation error (and any of ours) in the core
    shape: say so instead of FastAPI's ``HTTPValidationError``."""
    responses = op.setdefault("responses", {})
    responses.pop("422", None)
    responses.setdefault("default", FAIL)


def install_openapi(
    app: FastAPI,
    paths: PathItems,
    schemas: Mapping[str, Any] | None = None,
    security: Mapping[str, Any] | None = None,
) -> None:
    """Serve ``app``'s document at :data:`OPENAPI_URL`: its APIRoutes as FastAPI describes
    them, plus ``paths`` (the plain routes; add :data:`OPS_PATHS` and what else it serves)
    and ``schemas`` and ``security`` (components they refer to). Built once, on first use."""
    cache: list[bytes] = []

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_document(app, paths, schemas, security)
        return app.openapi_schema

    async def endpoint(_: Request) -> Response:
        if not cache:
            cache.append(orjson.dumps(openapi()))
        return Response(cache[0], media_type="application/json")

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_route(OPENAPI_URL, endpoint, methods=["GET"], include_in_schema=False)


def served(routes: Sequence[BaseRoute]) -> set[tuple[str, str]]:
    """Every (path template, lower-case method) ``routes`` answer (HEAD left out), the
    routes of included routers too."""
    return {
        (context.path, method.lower())
        for context in iter_route_contexts(routes)
        if isinstance(context.path, str)
        for method in context.methods or ()
        if method != "HEAD"
    }


def undocumented(app: FastAPI) -> list[str]:
    """The routes ``app`` serves that its document does not describe, e.g. ``GET /x``."""
    doc = app.openapi()
    paths = doc.get("paths", {})
    return sorted(
        f"{method.upper()} {path}"
        for path, method in served(app.routes)
        if method not in paths.get(path, {})
    )
