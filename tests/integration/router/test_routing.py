"""Every mode through real processes: canary stickiness, pinning, blue/green under load,
candidate failure, shadow comparison against the truth, the prediction log."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis

from sluice.core.predlog import decode, stream_key
from sluice.router.split import bucket
from tests.integration.router.conftest import ADMIN, MODEL, Stack, metric, wait_for

CLIENT = httpx.Client(timeout=10)


@pytest.fixture(scope="module", autouse=True)
def _close_client() -> Iterator[None]:
    yield
    CLIENT.close()


def predict(url: str, *instances: dict[str, Any], **headers: str) -> httpx.Response:
    return CLIENT.post(
        f"{url}/v1/models/{MODEL}:predict",
        json={"instances": list(instances)},
        headers=headers,
        timeout=10,
    )


def direct(stack: Stack, version: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    resp = httpx.post(
        f"{stack.servers[version]}/v1/models/{MODEL}:predict", json={"instances": rows}, timeout=10
    )
    assert resp.status_code == 200, resp.text
    preds: list[dict[str, Any]] = resp.json()["predictions"]
    return preds


def test_an_entity_id_is_enough_and_the_answer_equals_a_direct_call(stack: Stack) -> None:
    stack.route()
    customers = stack.customers(5)
    resp = predict(stack.router, *({"customer_id": c} for c in customers))
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-sluice-version"] == "v1"
    expected = direct(stack, "v1", [stack.row(c) for c in customers])
    assert resp.json()["predictions"] == expected
    partial = {**stack.row(customers[0]), "customer_id": customers[0], "plan": "premium"}
    del partial["age"]
    given = predict(stack.router, partial).json()["predictions"]
    assert given == direct(stack, "v1", [{**stack.row(customers[0]), "plan": "premium"}])


def test_a_frozen_online_store_fails_the_lookup_in_time_and_recovers(stack: Stack) -> None:
    """Redis stops answering (SIGSTOP): a lookup gives up after the lookup timeout (0.5 s)
    with a 503 naming it, instead of hanging; once Redis answers again, so do lookups."""
    stack.route()
    customer = stack.customers(1)[0]
    assert predict(stack.router, {"customer_id": customer}).status_code == 200
    pid = stack.redis.popen.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        resp = predict(stack.router, {"customer_id": customer})
        took = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert resp.status_code == 503, resp.text
    assert "feature lookup failed" in resp.json()["error"]["message"]
    assert took < 2.0
    wait_for(
        lambda: predict(stack.router, {"customer_id": customer}).status_code == 200,
        what="lookups answering again",
    )


def test_canary_split_is_sticky_and_monotonic(stack: Stack) -> None:
    customers = stack.customers(300)
    stack.route(candidate="v2", mode="canary", weight=30)
    seen = {
        c: predict(stack.router, {"customer_id": c}).headers["x-sluice-version"] for c in customers
    }
    assert all(v == ("v2" if bucket(c) < 3000 else "v1") for c, v in seen.items())
    share = sum(v == "v2" for v in seen.values()) / len(seen)
    assert abs(share - 0.30) < 0.08  # 300 keys; the 10,000-key check is a unit test
    again = {
        c: predict(stack.router, {"customer_id": c}).headers["x-sluice-version"]
        for c in customers[:50]
    }
    assert again == {c: seen[c] for c in customers[:50]}
    stack.route(candidate="v2", mode="canary", weight=60)
    grown = {
        c: predict(stack.router, {"customer_id": c}).headers["x-sluice-version"] for c in customers
    }
    assert all(grown[c] == "v2" for c, v in seen.items() if v == "v2")
    assert sum(v == "v2" for v in grown.values()) > sum(v == "v2" for v in seen.values())


def test_the_version_header_pins_and_every_answer_says_who_answered(stack: Stack) -> None:
    stack.route(candidate="v2", mode="bluegreen")
    customer = stack.customers(1)[0]
    assert predict(stack.router, {"customer_id": customer}).headers["x-sluice-version"] == "v1"
    pinned = predict(stack.router, {"customer_id": customer}, **{"x-sluice-version": "v2"})
    assert pinned.headers["x-sluice-version"] == "v2"
    assert pinned.json()["model_version"] == "v2"
    assert (
        predict(stack.router, {"customer_id": customer}, **{"x-sluice-version": "v7"}).status_code
        == 404
    )


def test_a_change_reaches_the_other_replica_within_a_second(stack: Stack) -> None:
    before = stack.route()["revision"]
    stack.route(candidate="v2", mode="canary", weight=12)

    def applied() -> bool:
        doc = httpx.get(f"{stack.replica}/admin/v1/routes/{MODEL}", headers=ADMIN).json()
        return bool(doc["applied_revision"] == before + 1)

    assert wait_for(applied, timeout=1.0, what="propagation to the replica") < 1.0
    assert (
        metric(stack.replica, "sluice_router_traffic_weight_ratio", model=MODEL, version="v2")
        == 0.12
    )


def test_invalid_changes_are_refused_and_leave_the_table_alone(stack: Stack) -> None:
    good = stack.route(candidate="v2", mode="canary", weight=20)
    bad = httpx.put(
        f"{stack.router}/admin/v1/routes/{MODEL}",
        headers=ADMIN,
        json={
            "upstreams": stack.servers,
            "stable": "v1",
            "candidate": "v3",
            "mode": "canary",
            "weight": 20,
        },
    )
    assert bad.status_code == 422
    assert "v3" in bad.json()["error"]["message"]
    now = httpx.get(f"{stack.router}/admin/v1/routes/{MODEL}", headers=ADMIN).json()
    assert (now["revision"], now["candidate"], now["weight"]) == (good["revision"], "v2", 20)


async def _load(
    url: str,
    customers: list[str],
    results: list[Any],
    stop: asyncio.Event,
    per_client: list[list[Any]] | None = None,
) -> None:
    """Send requests from four clients, each one request at a time, until ``stop``; append
    (status, version) each, in the order the answers came (and per client, when given:
    four requests in flight may answer out of the order they were routed in)."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:

        async def worker(k: int) -> None:
            i = k
            while not stop.is_set():
                body = {"instances": [{"customer_id": customers[i % len(customers)]}]}
                try:
                    resp = await client.post(f"/v1/models/{MODEL}:predict", json=body)
                    answer = (resp.status_code, resp.headers.get("x-sluice-version"))
                except httpx.HTTPError as exc:
                    answer = (0, repr(exc))
                results.append(answer)
                if per_client is not None:
                    per_client[k].append(answer)
                i += 4

        await asyncio.gather(*(worker(k) for k in range(4)))


async def _until(condition: Callable[[], bool]) -> None:
    """Wait (without blocking the load) until ``condition()``; pytest's timeout bounds it."""
    while not condition():
        await asyncio.sleep(0.05)


def _last(results: list[Any], n: int, version: str) -> bool:
    return len(results) >= n and all(v == version for _, v in results[-n:])


def test_bluegreen_switch_under_load_fails_no_request(stack: Stack) -> None:
    """Users of both router replicas keep getting answers while blue/green switches: each
    user's requests are v1's until the switch, then every one v2's, and none fails."""
    stack.route(candidate="v2", mode="bluegreen")
    customers = stack.customers(200)
    on_router: list[Any] = []
    on_replica: list[Any] = []
    clients: dict[str, list[list[Any]]] = {"router": [[] for _ in range(4)],
                                           "replica": [[] for _ in range(4)]}  # fmt: skip

    async def scenario() -> None:
        stop = asyncio.Event()
        loads = [
            asyncio.create_task(_load(url, customers, results, stop, clients[name]))
            for name, url, results in (
                ("router", stack.router, on_router),
                ("replica", stack.replica, on_replica),
            )
        ]
        await _until(lambda: len(on_router) >= 50 and len(on_replica) >= 50)
        async with httpx.AsyncClient(timeout=10) as admin:
            body = {
                "upstreams": stack.servers,
                "stable": "v2",
                "candidate": "v1",
                "mode": "bluegreen",
            }
            resp = await admin.put(
                f"{stack.router}/admin/v1/routes/{MODEL}", json=body, headers=ADMIN
            )
            assert resp.status_code == 200
        await _until(lambda: _last(on_router, 50, "v2") and _last(on_replica, 50, "v2"))
        stop.set()
        await asyncio.gather(*loads)

    asyncio.run(scenario())
    for results in (on_router, on_replica):
        statuses = Counter(status for status, _ in results)
        assert statuses == {200: len(results)}, statuses
        assert [v for _, v in results].index("v2") >= 50  # v1 answered until the switch
    for name, users in clients.items():
        for k, answers in enumerate(users):
            versions = [v for _, v in answers]
            switched = versions.index("v2")
            assert set(versions[:switched]) <= {"v1"}, (name, k)
            assert set(versions[switched:]) == {"v2"}, (name, k, versions[switched:])


def test_a_failing_candidate_is_answered_by_stable(stack: Stack) -> None:
    customers = stack.customers(100)
    with stack.start_server("v2") as doomed:
        ups = {**stack.servers, "v2": doomed.url}
        resp = httpx.put(
            f"{stack.router}/admin/v1/routes/{MODEL}",
            headers=ADMIN,
            json={
                "upstreams": ups,
                "stable": "v1",
                "candidate": "v2",
                "mode": "canary",
                "weight": 100,
            },
        )
        assert resp.status_code == 200
        assert (
            predict(stack.router, {"customer_id": customers[0]}).headers["x-sluice-version"] == "v2"
        )
        before = metric(stack.router, "sluice_router_fallbacks_total", model=MODEL, version="v2")

        results: list[Any] = []

        async def scenario() -> None:
            stop = asyncio.Event()
            load = asyncio.create_task(_load(stack.router, customers, results, stop))
            await _until(lambda: len(results) >= 20)
            doomed.stop(signal.SIGKILL)
            await _until(lambda: _last(results, 50, "v1"))
            stop.set()
            await load

        asyncio.run(scenario())
    assert Counter(s for s, _ in results) == {200: len(results)}
    after = metric(stack.router, "sluice_router_fallbacks_total", model=MODEL, version="v2")
    assert after > before
    assert metric(stack.router, "sluice_router_circuit_open", model=MODEL, version="v2") == 1


def test_shadow_comparisons_match_the_true_disagreement(stack: Stack) -> None:
    stack.route(candidate="v2", mode="shadow")
    customers = stack.customers(300, offset=500)
    rows = [stack.row(c) for c in customers]
    stable, candidate = direct(stack, "v1", rows), direct(stack, "v2", rows)
    truth = sum(a["label"] != b["label"] for a, b in zip(stable, candidate, strict=True))
    diff_sum = sum(
        abs(a["probabilities"]["1"] - b["probabilities"]["1"])
        for a, b in zip(stable, candidate, strict=True)
    )
    assert 0 < truth < len(customers)  # the two algorithms really disagree, sometimes
    pair = {"model": MODEL, "stable": "v1", "candidate": "v2"}

    def rows_seen() -> float:
        return sum(
            metric(stack.router, "sluice_router_shadow_rows_total", **pair, outcome=o)
            for o in ("agree", "disagree")
        )

    start_rows = rows_seen()
    start_dis = metric(stack.router, "sluice_router_shadow_rows_total", **pair, outcome="disagree")
    start_sum = metric(stack.router, "sluice_router_shadow_score_abs_diff_sum", **pair)
    for c in customers:
        resp = predict(stack.router, {"customer_id": c}, **{"x-request-id": f"shadow-{c}"})
        assert resp.headers["x-sluice-version"] == "v1"
    wait_for(lambda: rows_seen() - start_rows == len(customers), what="shadow comparisons")
    disagreed = (
        metric(stack.router, "sluice_router_shadow_rows_total", **pair, outcome="disagree")
        - start_dis
    )
    assert disagreed == truth
    got_sum = metric(stack.router, "sluice_router_shadow_score_abs_diff_sum", **pair) - start_sum
    assert got_sum == pytest.approx(diff_sum, abs=1e-6)
    diffs = httpx.get(
        f"{stack.router}/admin/v1/shadow/{MODEL}/diffs?limit=1000", headers=ADMIN
    ).json()["disagreements"]
    ours = [d for d in diffs if d["request_id"].startswith("shadow-")]
    assert len(ours) == min(truth, 100)  # the router keeps the newest 100
    sample = ours[0]
    customer = sample["request_id"].removeprefix("shadow-")
    assert sample["inputs"] == stack.row(customer)
    assert sample["stable"]["label"] != sample["candidate"]["label"]


def test_the_prediction_log_holds_what_the_model_saw(stack: Stack) -> None:
    stack.route()
    customers = stack.customers(3, offset=900)
    resp = predict(
        stack.router, *({"customer_id": c} for c in customers), **{"x-request-id": "predlog-1"}
    )
    preds = resp.json()["predictions"]
    client = redis.Redis.from_url(stack.redis_url)

    def logged() -> list[Any]:
        entries = client.xrevrange(stream_key(MODEL), count=200)
        return [decode(f) for _, f in entries if decode(f).request_id == "predlog-1"]

    wait_for(lambda: bool(logged()), what="the prediction-log record")
    (record,) = logged()
    client.close()
    assert (record.version, record.role, record.rows) == ("v1", "primary", 3)
    assert record.row_ids() == ["predlog-1/0", "predlog-1/1", "predlog-1/2"]
    rows = [stack.row(c) for c in customers]
    assert record.features == {f: [r[f] for r in rows] for f in stack.features}
    assert record.labels == [p["label"] for p in preds]
    assert record.scores == [p["probabilities"]["1"] for p in preds]
    assert record.latency_ms > 0
