"""A router that has not read its routing table yet (Redis away at start) answers 503 to
retry, never a 404 that says the model is not routed; it serves once the table comes."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry

from sluice.core.routes import Route, Snapshot, parse_route
from sluice.router import service
from sluice.router.app import create_app
from sluice.router.settings import Settings
from tests.support.asgi import AppClient
from tests.unit.router.conftest import TOKEN, V1_URL
from tests.unit.router.fakes import (
    FakeLookup,
    FakeModelServer,
    FakePredictionLog,
    FakeRoutingStore,
    FakeSamples,
    FakeUpstream,
)


class AwayStore(FakeRoutingStore):
    """Its Redis does not answer until ``away`` is False."""

    away = True

    async def load(self) -> dict[str, Route]:
        if self.away:
            raise ConnectionError("redis is away")
        return await super().load()

    async def snapshot(self) -> Snapshot:
        if self.away:
            raise ConnectionError("redis is away")
        return await super().snapshot()


def test_an_unread_table_answers_503_then_the_route_once_it_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "FIRST_LOAD_SECONDS", 0.1)
    store = AwayStore()
    store.routes["churn"] = parse_route("churn", {"upstreams": {"v1": V1_URL}, "stable": "v1"})
    app = create_app(
        Settings(admin_token=TOKEN, refresh_seconds=0.05),
        registry=CollectorRegistry(), store=store, samples=FakeSamples(),
        predlog=FakePredictionLog(), lookup=FakeLookup({}),
        client=FakeUpstream({V1_URL: FakeModelServer("churn", "v1")}),
    )  # fmt: skip
    row = {"tenure": 3.0, "plan": "basic"}
    with AppClient(app) as client:
        answer = client.post("/v1/models/churn:predict", json={"instances": [row]})
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "routing_table_not_loaded"
        assert client.get("/readyz").status_code == 503
        store.away = False
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        answer = client.post("/v1/models/churn:predict", json={"instances": [row]})
        assert answer.status_code == 200, answer.text
