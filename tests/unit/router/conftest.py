"""A router app wired to in-process fakes: two fake model-server versions, a fake store,
feature lookup, prediction log and shadow samples."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from prometheus_client import CollectorRegistry

from sluice.router.app import create_app
from sluice.router.service import RouterService
from sluice.router.settings import Settings
from tests.support.asgi import AppClient
from tests.unit.router.fakes import (
    FakeLookup,
    FakeModelServer,
    FakePredictionLog,
    FakeRoutingStore,
    FakeSamples,
    FakeUpstream,
)

TOKEN = "s3cret"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
V1_URL, V2_URL = "http://v1.test:8000", "http://v2.test:8000"


T = TypeVar("T")


@dataclass
class World:
    client: AppClient
    servers: dict[str, FakeModelServer]
    upstream: FakeUpstream
    store: FakeRoutingStore
    lookup: FakeLookup
    predlog: FakePredictionLog
    samples: FakeSamples
    registry: CollectorRegistry

    @property
    def service(self) -> RouterService:
        service: RouterService = self.client.app.state.service
        return service

    def route(self, **policy: Any) -> dict[str, Any]:
        body = {"upstreams": {"v1": V1_URL, "v2": V2_URL}, "stable": "v1", **policy}
        resp = self.client.put("/admin/v1/routes/churn", json=body, headers=ADMIN)
        assert resp.status_code == 200, resp.text
        doc: dict[str, Any] = resp.json()
        return doc

    def predict(self, *instances: dict[str, Any], **headers: str) -> Any:
        return self.client.post(
            "/v1/models/churn:predict", json={"instances": list(instances)}, headers=headers
        )

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def drain_shadow(self) -> None:
        self.client.run(self.service.mirror.drain())


def customers() -> dict[tuple[str, str], Any]:
    values: dict[tuple[str, str], Any] = {}
    for i in range(200):
        values[("customer:tenure", f"C{i}")] = float(i % 40)
        values[("customer:plan", f"C{i}")] = "basic" if i % 3 == 0 else "premium"
    return values


@pytest.fixture
def make_world() -> Iterator[Callable[..., World]]:
    stack: list[AppClient] = []

    def build(**settings: Any) -> World:
        servers = {
            V1_URL: FakeModelServer("churn", "v1"),
            # v2 disagrees with v1 on every "premium" row
            V2_URL: FakeModelServer("churn", "v2", predict=lambda _: 0.9),
        }
        upstream = FakeUpstream(servers)
        store, samples, predlog = FakeRoutingStore(), FakeSamples(), FakePredictionLog()
        lookup = FakeLookup(customers(), stale={"C199"})
        registry = CollectorRegistry()
        app = create_app(
            Settings(**{"admin_token": TOKEN, **settings}),
            registry=registry,
            store=store,
            samples=samples,
            predlog=predlog,
            client=upstream,
            lookup=lookup,
        )
        client = AppClient(app).__enter__()
        stack.append(client)
        return World(client, servers, upstream, store, lookup, predlog, samples, registry)

    yield build
    for client in stack:
        client.__exit__(None, None, None)


@pytest.fixture
def world(make_world: Callable[..., World]) -> World:
    return make_world()
