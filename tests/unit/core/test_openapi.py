"""Every service serves an OpenAPI 3 document at /openapi.json describing every route."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from openapi_spec_validator import validate
from prometheus_client import CollectorRegistry

from sluice.core.openapi import OPENAPI_URL, served, undocumented
from sluice.drift_monitor.app import create_app as drift_app
from sluice.drift_monitor.settings import Settings as DriftSettings
from sluice.feature_store.app import create_app as feature_app
from sluice.feature_store.settings import Settings as FeatureSettings
from sluice.model_server.app import create_app as model_app
from sluice.rollout.app import create_app as rollout_app
from sluice.rollout.settings import Settings as RolloutSettings
from sluice.router.app import create_app as router_app
from sluice.router.settings import Settings as RouterSettings
from tests.support.asgi import AppClient
from tests.unit.drift_monitor.fakes import FakeFeedback, FakeLog, FakeState
from tests.unit.feature_store.fakes import FakeOnlineStore
from tests.unit.model_server.conftest import FakeRuntime, make_card, make_settings


def feature_store(_: Path) -> FastAPI:
    return feature_app(FeatureSettings(), store=FakeOnlineStore([]), registry=CollectorRegistry())


def model_server(tmp_path: Path) -> FastAPI:
    return model_app(
        make_settings(tmp_path), card=make_card(), load_runtime=FakeRuntime,
        registry=CollectorRegistry(),
    )  # fmt: skip


def router(_: Path) -> FastAPI:
    return router_app(RouterSettings(), registry=CollectorRegistry())


def drift_monitor(tmp_path: Path) -> FastAPI:
    return drift_app(
        DriftSettings(registry=tmp_path), state=FakeState(), feedback=FakeFeedback(),
        prediction_log=FakeLog(), registry=CollectorRegistry(), run_monitor=False,
    )  # fmt: skip


def rollout(_: Path) -> FastAPI:
    return rollout_app(RolloutSettings(), registry=CollectorRegistry())


SERVICES: dict[str, Callable[[Path], FastAPI]] = {
    "feature-store": feature_store,
    "model-server": model_server,
    "router": router,
    "drift-monitor": drift_monitor,
    "rollout": rollout,
}


@pytest.mark.parametrize("name", SERVICES)
def test_the_document_is_valid_openapi_3_and_describes_every_route(
    name: str, tmp_path: Path
) -> None:
    app = SERVICES[name](tmp_path)
    doc: dict[str, Any] = app.openapi()
    validate(doc)
    assert doc["openapi"].startswith("3.")
    assert undocumented(app) == []
    described = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert described == served(app.routes), "the document names a route nobody serves"


def test_the_v2_routes_are_the_open_inference_protocols(tmp_path: Path) -> None:
    doc = model_server(tmp_path).openapi()
    infer = doc["paths"]["/v2/models/{model}/versions/{version}/infer"]["post"]
    request = infer["requestBody"]["content"]["application/json"]["schema"]
    assert request == {"$ref": "#/components/schemas/inference_request"}
    schemas = doc["components"]["schemas"]
    assert schemas["inference_request"]["required"] == ["inputs"]
    assert schemas["request_input"]["required"] == ["name", "shape", "datatype", "data"]
    assert infer["responses"]["default"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/inference_error_response"
    }
    # FastAPI's {"detail": [...]} is not what the handler answers: not in the document
    assert "HTTPValidationError" not in schemas


def test_it_is_served_at_openapi_json(tmp_path: Path) -> None:
    with AppClient(drift_monitor(tmp_path)) as client:
        response = client.get(OPENAPI_URL)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "/v1/feedback" in response.json()["paths"]
