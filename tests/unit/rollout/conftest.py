"""A controller over fakes of our own interfaces, driven by a clock the test moves."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from sluice.core.routes import Route, parse_route
from sluice.rollout.metrics import Metrics
from sluice.rollout.resource import Rollout, Status, parse
from sluice.rollout.service import RolloutController
from tests.unit.rollout.fakes import FakeEvidence, FakeLeader, FakeSource
from tests.unit.router.fakes import FakeRoutingStore

T0 = 1_700_000_000.0


def synchronously(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test on its own event loop (pytest sees a plain test)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


CANARY = """
apiVersion: serving.sluice.dev/v1alpha1
kind: ModelRollout
metadata: {name: churn}
spec:
  model: churn
  stable: v1
  candidate: v2
  strategy:
    canary:
      steps:
        - setWeight: 10
        - pause: {duration: 30s}
        - setWeight: 50
        - analysis: {}
        - setWeight: 100
  analysis:
    interval: 10s
    minSamples: 200
    failureLimit: 2
    inconclusiveLimit: 3
    metrics:
      - {name: success, builtin: successRate, condition: ">= 0.99"}
      - {name: p99, builtin: latencyP99, condition: "<= 0.25"}
"""


def rollout(text: str = CANARY, **spec: Any) -> Rollout:
    doc = yaml.safe_load(text)
    doc["spec"].update(spec)
    return parse(doc)


@dataclass
class Harness:
    controller: RolloutController
    source: FakeSource
    routes: FakeRoutingStore
    evidence: FakeEvidence
    registry: CollectorRegistry
    now: float = T0

    def clock(self) -> float:
        return self.now

    async def run(self, seconds: float, tick: float = 0.5) -> None:
        """Move the clock ``seconds`` forward, reconciling every ``tick``."""
        end = self.now + seconds
        while self.now < end:
            self.now = round(self.now + tick, 6)
            await self.controller.reconcile_all()

    async def route(self, model: str = "churn") -> Route:
        return (await self.routes.load())[model]

    def status(self, name: str = "churn") -> Status:
        return self.source.status(name)

    def act(self, action: str, name: str = "churn", weight: int | None = None) -> None:
        import orjson

        from sluice.rollout.resource import ACTION_ANNOTATION

        r = self.source.rollouts[name]
        doc = {"action": action, "id": f"{action}-{self.now}", "weight": weight}
        self.source.rollouts[name] = r.model_copy(
            update={"annotations": {ACTION_ANNOTATION: orjson.dumps(doc).decode()}}
        )

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


def make(*rollouts: Rollout, source: FakeSource | None = None,
         routes: FakeRoutingStore | None = None,
         evidence: FakeEvidence | None = None) -> Harness:  # fmt: skip
    routes = routes or FakeRoutingStore()
    if not routes.routes:
        routes.routes["churn"] = parse_route(
            "churn", {"upstreams": {"v1": "http://v1:8000", "v2": "http://v2:8000"}, "stable": "v1"}
        ).model_copy(update={"revision": 1})
        routes.revisions["churn"] = 1
    registry = CollectorRegistry()
    h = Harness(None, source or FakeSource(*rollouts), routes, evidence or FakeEvidence(), registry)  # type: ignore[arg-type]
    h.controller = RolloutController(
        source=h.source, leader=FakeLeader(), routes=routes, evidence=h.evidence,
        metrics=Metrics(registry), tick=0.5, settle=0.5, clock=h.clock,
    )  # fmt: skip
    return h


@pytest.fixture
def harness() -> Iterator[Harness]:
    yield make(rollout())
