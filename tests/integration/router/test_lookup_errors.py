"""Whose fault a failed feature lookup is, through real processes: a client's bad entity id
is the client's 4xx naming its field (not a 503, not a lookup error, not a warning), and a
real outage is still a 503 that says what happened without our internal addresses.

Both lookup modes: ``redis`` (the router reads the online store in process) and ``http``
(the router asks the feature store service). Their online store is a Redis of this module,
with the churn features materialised, so the last tests can stop it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.router.conftest import (
    EXAMPLES,
    MODEL,
    Stack,
    _load_features,
    metric,
    wait_for,
)
from tests.support.procs import Process, free_port, redis_server, running, sluice_command

GATEWAY = "http_request_duration_seconds_count"
LOOKUP_ERRORS = "sluice_router_feature_lookup_errors_total"


@dataclass
class Lookups:
    routers: dict[str, Process]
    """lookup mode -> a router using it."""
    feature_store: Process
    redis: Process
    redis_url: str


@pytest.fixture(scope="module")
def lookups(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lookups]:
    root = tmp_path_factory.mktemp("lookup-errors")
    source = root / "churn.parquet"
    stack.table.to_parquet(source)
    definitions = root / "features.yaml"
    definitions.write_text(EXAMPLES.read_text().replace("../../.sluice/churn.parquet", str(source)))
    with ExitStack() as stack_:
        url, redis = stack_.enter_context(redis_server(root / "redis"))
        asyncio.run(_load_features(url, definitions))
        port = free_port()
        feature_store = stack_.enter_context(
            running(
                [*sluice_command(), "serve", "feature-store", "--port", str(port),
                 "--redis-url", url],
                log=root / "feature-store.log",
                ready_url=f"http://127.0.0.1:{port}/readyz",
            )
        )  # fmt: skip
        modes = {
            "redis": {"SLUICE_ROUTER_FEATURE_REDIS_URL": url},
            "http": {
                "SLUICE_ROUTER_FEATURE_LOOKUP": "http",
                "SLUICE_ROUTER_FEATURE_STORE_URL": feature_store.url or "",
            },
        }
        routers = {}
        for mode, env in modes.items():
            port = free_port()
            argv = [*sluice_command(), "serve", "router", "--redis-url", stack.redis_url,
                    "--registry", str(stack.registry.root), "--port", str(port)]  # fmt: skip
            routers[mode] = stack_.enter_context(
                running(
                    argv,
                    log=root / f"router-{mode}.log",
                    env=env,
                    ready_url=f"http://127.0.0.1:{port}/readyz",
                )
            )
        yield Lookups(routers, feature_store, redis, url)


def warnings(router: Process) -> list[str]:
    """The router's log lines at WARNING or above."""
    found = []
    for line in router.output().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("level") in ("WARNING", "ERROR", "CRITICAL"):
            found.append(str(record.get("message")))
    return found


def predict(url: str, *instances: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/models/{MODEL}:predict", json={"instances": list(instances)}, timeout=10
    )


BAD_IDS = [
    pytest.param("", "must be 1 to 1024 characters, got 0", id="empty"),
    pytest.param("C" * 1025, "must be 1 to 1024 characters, got 1025", id="too-long"),
    pytest.param(7, "expected a string, got int 7", id="number"),  # refused by the store
    pytest.param(["C1"], "expected a string or an integer, got list ['C1']", id="list"),
    pytest.param({"id": "C1"}, "expected a string or an integer, got dict", id="object"),
]


@pytest.mark.parametrize("mode", ["redis", "http"])
@pytest.mark.parametrize(("bad", "problem"), BAD_IDS)
def test_a_bad_entity_id_is_the_clients_422_naming_the_field(
    stack: Stack, lookups: Lookups, mode: str, bad: Any, problem: str
) -> None:
    stack.route()
    router = lookups.routers[mode]
    url = router.url or ""
    good = stack.customers(1)[0]
    assert predict(url, {"customer_id": good}).status_code == 200  # route and schema known
    before = {status: metric(url, GATEWAY, status=status) for status in ("422", "503")} | {
        "errors": metric(url, LOOKUP_ERRORS)
    }
    logged = len(warnings(router))
    resp = predict(url, {"customer_id": good}, {"customer_id": bad})
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_entity"
    assert error["message"].startswith("instances[1].customer_id: "), error["message"]
    assert problem in error["message"]
    assert metric(url, GATEWAY, status="422") == before["422"] + 1
    assert metric(url, GATEWAY, status="503") == before["503"]
    assert metric(url, LOOKUP_ERRORS) == before["errors"]
    assert warnings(router)[logged:] == []


def test_an_online_store_that_is_down_is_a_503_without_our_addresses(
    stack: Stack, lookups: Lookups
) -> None:
    """Last in this module: it stops the module's Redis, behind both lookup modes."""
    stack.route()
    customer = stack.customers(2)[1]
    for router in lookups.routers.values():
        assert predict(router.url or "", {"customer_id": customer}).status_code == 200
    lookups.redis.stop()
    port = lookups.redis_url.rsplit(":", 1)[1].split("/")[0]
    addresses = ("127.0.0.1", "localhost", "redis://", port, lookups.feature_store.url or "?")
    for mode, router in lookups.routers.items():
        url = router.url or ""
        errors = metric(url, LOOKUP_ERRORS)
        outages = metric(url, GATEWAY, status="503")
        resp = predict(url, {"customer_id": customer})
        assert resp.status_code == 503, (mode, resp.text)
        error = resp.json()["error"]
        assert error["code"] == "feature_lookup_unavailable"
        message: str = error["message"]
        assert message.startswith("feature lookup failed: "), message
        assert "unavailable" in message.split(": ", 1)[1], message  # not empty: says what
        assert not [a for a in addresses if a in message], (mode, message)
        assert metric(url, LOOKUP_ERRORS) == errors + 1
        assert metric(url, GATEWAY, status="503") == outages + 1
        logged = [w for w in warnings(router) if "feature lookup failed" in w]
        assert logged, f"{mode}: the failure is not in the router's log"
        # the detail with the address is in our log: the feature store's answer (http), or
        # the online store's own line naming Redis, once an outage (redis)
        detail = [w for w in warnings(router) if port in w or "feature store answered 503" in w]
        assert detail, (mode, logged)


def test_an_online_store_that_is_down_is_answered_with_defaults_under_that_policy(
    stack: Stack, lookups: Lookups
) -> None:
    """The model's owner chose ``on_missing: default``: an outage of the online store is
    answered with the training defaults, counted as UNAVAILABLE gaps and lookup errors."""
    revision = stack.route(on_missing="default")["revision"]
    customer = stack.customers(3)[2]
    for router in lookups.routers.values():  # v1's schema is read while the store is up
        wait_for(partial(applies, router.url or "", revision), 10, "the route")
        predict(router.url or "", {"customer_id": customer})
    lookups.redis.stop()  # stopped already when run after the test above
    for mode, router in lookups.routers.items():
        url = router.url or ""
        wait_for(partial(applies, url, revision), 10, f"{mode}: the route")
        errors = metric(url, LOOKUP_ERRORS)
        gaps = {f: gap(url, f) for f in stack.features}
        resp = predict(url, {"customer_id": customer})
        assert resp.status_code == 200, (mode, resp.text)
        assert resp.headers["x-sluice-version"] == "v1"
        assert {f: gap(url, f) - n for f, n in gaps.items()} == dict.fromkeys(stack.features, 1)
        assert metric(url, LOOKUP_ERRORS) == errors + 1
        assert any("filling training defaults" in w for w in warnings(router)), mode


def test_a_router_started_while_the_store_is_down_answers_by_the_policy(
    stack: Stack, lookups: Lookups, tmp_path: Path
) -> None:
    """A new replica (a restart, a scale-up) cannot read the views' refs of a version whose
    card names none: under ``default`` it answers from the training defaults all the same,
    counted as UNAVAILABLE gaps, instead of a 503 for every request."""
    revision = stack.route(on_missing="default")["revision"]
    lookups.redis.stop()
    port = free_port()
    argv = [*sluice_command(), "serve", "router", "--redis-url", stack.redis_url,
            "--registry", str(stack.registry.root), "--port", str(port)]  # fmt: skip
    env = {"SLUICE_ROUTER_FEATURE_REDIS_URL": lookups.redis_url}
    with running(argv, log=tmp_path / "router.log", env=env,
                 ready_url=f"http://127.0.0.1:{port}/readyz") as router:  # fmt: skip
        url = router.url or ""
        wait_for(partial(applies, url, revision), 10, "the route")
        for customer in stack.customers(2):
            resp = predict(url, {"customer_id": customer})
            assert resp.status_code == 200, resp.text
        assert {f: gap(url, f) for f in stack.features} == dict.fromkeys(stack.features, 2)
        assert metric(url, LOOKUP_ERRORS) == 2
        assert any("cannot read the feature views' refs" in w for w in warnings(router))


def applies(url: str, revision: int) -> bool:
    return metric(url, "sluice_router_table_revision", model=MODEL) >= revision


def gap(url: str, feature: str) -> float:
    labels = {"feature": feature, "status": "UNAVAILABLE", "action": "default"}
    return metric(url, "sluice_router_feature_gaps_total", model=MODEL, **labels)
