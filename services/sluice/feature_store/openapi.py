"""The OpenAPI path items of the feature store's plain routes (``api.py``, ``feast.py``).

``core.openapi.install_openapi`` adds them, with the health and metrics routes, to the
document served at ``/openapi.json``.
"""

from __future__ import annotations

from typing import Any

from sluice.core.openapi import FAIL, PathItems, body, ref, respond
from sluice.feature_store.retrieval import STATUSES

FEAST_FAIL = respond(
    "An error as Feast's server answers it: a JSON string holding "
    '{"module": "feast.errors", "class": ..., "message": ...}.',
    {"type": "string"},
)
WRITER: list[dict[str, list[str]]] = [{"featureWriter": []}]
SECURITY_SCHEMES = {
    "featureWriter": {
        "type": "http",
        "scheme": "bearer",
        "description": "SLUICE_FEATURE_WRITE_TOKEN",
    }
}

COLUMNS = {
    "type": "object",
    "description": "Feast's columnar frame: column -> values, every column the same length.",
    "minProperties": 1,
    "additionalProperties": {"type": "array", "items": {}},
}
SCHEMAS: dict[str, Any] = {
    "online_request": {
        "type": "object",
        "required": ["features", "entities"],
        "properties": {
            "features": {
                "type": "array",
                "items": {"type": "string"},
                "description": "'view:feature' or 'view:*'.",
            },
            "entities": {
                "type": "object",
                "description": "The join key -> its values (one key).",
                "additionalProperties": {"type": "array", "items": {}},
            },
        },
    },
    "feast_online_request": {
        "type": "object",
        "required": ["entities"],
        "properties": {
            "features": {"type": "array", "items": {"type": "string"}},
            "entities": {"type": "object", "additionalProperties": {"type": "array", "items": {}}},
            "full_feature_names": {"type": "boolean"},
            "feature_service": {"type": "string", "description": "Not supported (422)."},
        },
    },
    "online_response": {
        "type": "object",
        "required": ["metadata", "results"],
        "properties": {
            "metadata": {
                "type": "object",
                "required": ["feature_names"],
                "properties": {"feature_names": {"type": "array", "items": {"type": "string"}}},
            },
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["values", "statuses", "event_timestamps"],
                    "properties": {
                        "values": {"type": "array", "items": {}},
                        "statuses": {
                            "type": "array",
                            "items": {"type": "string", "enum": list(STATUSES)},
                        },
                        "event_timestamps": {
                            "type": "array",
                            "items": {"type": ["string", "null"], "format": "date-time"},
                        },
                    },
                },
            },
        },
    },
    "push_request": {
        "type": "object",
        "required": ["view", "rows"],
        "properties": {
            "view": {"type": "string"},
            "rows": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "description": "The join key, every feature (null for none), "
                    "event_timestamp (ISO-8601).",
                },
            },
        },
    },
    "push_response": {
        "type": "object",
        "required": ["view", "rows", "written", "skipped"],
        "properties": {
            "view": {"type": "string"},
            "rows": {"type": "integer"},
            "written": {"type": "integer"},
            "skipped": {"type": "integer", "description": "Older than what is stored."},
        },
    },
    "views_response": {
        "type": "object",
        "required": ["views"],
        "properties": {"views": {"type": "array", "items": {"type": "object"}}},
    },
    "feast_push_request": {
        "type": "object",
        "required": ["push_source_name", "df"],
        "properties": {
            "push_source_name": {"type": "string", "description": "The view's name."},
            "df": COLUMNS,
            "allow_registry_cache": {"type": "boolean"},
            "to": {"type": "string", "enum": ["online", "offline", "online_and_offline"]},
            "transform_on_write": {"type": "boolean"},
        },
    },
    "feast_write_request": {
        "type": "object",
        "required": ["feature_view_name", "df"],
        "properties": {
            "feature_view_name": {"type": "string"},
            "df": COLUMNS,
            "allow_registry_cache": {"type": "boolean"},
            "transform_on_write": {"type": "boolean"},
        },
    },
}


def _op(tags: str, summary: str, ok: dict[str, Any], fail: dict[str, Any]) -> dict[str, Any]:
    return {"tags": [tags], "summary": summary, "responses": {"200": ok, "default": fail}}


def _post(
    tags: str, summary: str, request: str, ok: dict[str, Any], fail: dict[str, Any]
) -> dict[str, Any]:
    return {**_op(tags, summary, ok, fail), "requestBody": body(ref(request))}


FEAST_WRITTEN = {"description": "Written (an empty body, as Feast's server answers)."}

PATHS: PathItems = {
    "/v1/features/views": {
        "get": _op(
            "features", "Every registered view.", respond("The views.", ref("views_response")), FAIL
        )
    },
    "/v1/features/get-online": {
        "post": _post(
            "features",
            "Online feature values, TTL enforced.",
            "online_request",
            respond("Columns of values and statuses.", ref("online_response")),
            FAIL,
        )
    },
    "/v1/features/push": {
        "post": _post(
            "features",
            "Write rows to the online store (newer wins).",
            "push_request",
            respond("What was written.", ref("push_response")),
            FAIL,
        )
    },
    "/get-online-features": {
        "post": _post(
            "feast",
            "Feast's online read.",
            "feast_online_request",
            respond("Feast's response.", ref("online_response")),
            FEAST_FAIL,
        )
    },
    "/push": {
        "post": {
            **_post("feast", "Feast's push.", "feast_push_request", FEAST_WRITTEN, FEAST_FAIL),
            "security": WRITER,
        }
    },
    "/write-to-online-store": {
        "post": {
            **_post(
                "feast",
                "Feast's write_to_online_store.",
                "feast_write_request",
                FEAST_WRITTEN,
                FEAST_FAIL,
            ),
            "security": WRITER,
        }
    },
}
