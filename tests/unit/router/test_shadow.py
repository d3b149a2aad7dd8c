"""Shadow mode: the user gets stable's answer; the copy is compared and recorded."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.unit.router.conftest import ADMIN, V1_URL, V2_URL, World

PAIR = {"model": "churn", "stable": "v1", "candidate": "v2"}


def test_shadow_comparisons_are_recorded(make_world: Callable[..., World]) -> None:
    world = make_world(shadow_batch_rows=1)  # a call per copy
    world.route(candidate="v2", mode="shadow")
    # C0, C3, C6 are basic (both say 1); the others premium (v1 says 0, v2 says 1)
    for i in range(9):
        resp = world.predict({"customer_id": f"C{i}"}, **{"x-request-id": f"r{i}"})
        assert resp.headers["x-sluice-version"] == "v1"
    world.drain_shadow()
    assert world.metric("sluice_router_shadow_rows_total", **PAIR, outcome="agree") == 3
    assert world.metric("sluice_router_shadow_rows_total", **PAIR, outcome="disagree") == 6
    assert world.metric("sluice_router_shadow_agreement_ratio", **PAIR) == pytest.approx(1 / 3)
    assert world.metric("sluice_router_shadow_score_abs_diff_sum", **PAIR) == pytest.approx(
        6 * 0.7, abs=1e-9
    )
    assert (
        world.metric("sluice_router_requests_total", model="churn", version="v2", role="shadow")
        == 9
    )
    diffs = world.client.get("/admin/v1/shadow/churn/diffs?limit=2", headers=ADMIN).json()
    newest = diffs["disagreements"][0]
    assert newest["request_id"] == "r8"
    assert newest["stable"] == {"version": "v1", "label": "0", "score": 0.2}
    assert newest["candidate"] == {"version": "v2", "label": "1", "score": 0.9}
    assert newest["inputs"] == {"tenure": 8.0, "plan": "premium"}
    roles = [(r.version, r.role) for _, r in world.predlog.records]
    assert roles.count(("v2", "shadow")) == 9
    assert roles.count(("v1", "primary")) == 9


def test_regressors_agree_when_their_values_are_within_the_tolerance(
    make_world: Callable[..., World],
) -> None:
    world = make_world(shadow_batch_rows=1, shadow_value_tolerance=0.05)
    stable, candidate = world.servers[V1_URL], world.servers[V2_URL]
    stable.task = candidate.task = "regression"
    stable.predict = lambda row: 100.0 if row["plan"] == "basic" else 200.0
    candidate.predict = lambda row: 104.0 if row["plan"] == "basic" else 230.0
    world.route(candidate="v2", mode="shadow")
    for i in range(6):  # C0 and C3 basic: within 5%; the others 15% apart
        resp = world.predict({"customer_id": f"C{i}"})
        assert resp.json()["predictions"][0]["value"] in (100.0, 200.0)
    world.drain_shadow()
    assert world.metric("sluice_router_shadow_rows_total", **PAIR, outcome="agree") == 2
    assert world.metric("sluice_router_shadow_rows_total", **PAIR, outcome="disagree") == 4
    assert world.metric("sluice_router_shadow_score_abs_diff_sum", **PAIR) == pytest.approx(
        2 * 4.0 + 4 * 30.0
    )
    shadow = [r for _, r in world.predlog.records if r.role == "shadow"]
    assert [r.scores for r in shadow][:2] == [[104.0], [230.0]]
    diffs = world.client.get("/admin/v1/shadow/churn/diffs?limit=1", headers=ADMIN).json()
    assert diffs["disagreements"][0]["candidate"]["score"] == 230.0


def test_a_failing_shadow_never_reaches_the_user(world: World) -> None:
    world.route(candidate="v2", mode="shadow")
    world.servers[V2_URL].fail = "500"
    resp = world.predict({"customer_id": "C1"})
    assert resp.status_code == 200
    world.drain_shadow()
    assert world.metric("sluice_router_shadow_errors_total", **PAIR, reason="status") == 1


def test_a_full_queue_drops_copies_and_counts_them(make_world: Callable[..., World]) -> None:
    world = make_world(shadow_queue_size=1, shadow_concurrency=1)
    world.route(candidate="v2", mode="shadow")
    world.client.run(world.service.mirror.stop(drain_seconds=0))  # no workers: nothing drains
    for i in range(3):
        assert world.predict({"customer_id": f"C{i}"}).status_code == 200
    assert (
        world.metric("sluice_router_shadow_dropped_total", model="churn", reason="queue_full") == 2
    )


def test_copies_waiting_together_share_one_call(make_world: Callable[..., World]) -> None:
    # one worker lingering a second: the five copies below join the first one's call
    world = make_world(shadow_concurrency=1, shadow_linger_seconds=1.0, shadow_batch_rows=32)
    world.route(candidate="v2", mode="shadow")
    for i in range(6):
        resp = world.predict({"customer_id": f"C{i}"}, **{"x-request-id": f"r{i}"})
        assert resp.status_code == 200
    world.drain_shadow()
    calls = world.servers[V2_URL].calls
    assert len(calls) == 1
    assert len(calls[0]["rows"]) == 6
    # each copy is still compared and logged on its own: C0 and C3 agree
    assert world.metric("sluice_router_shadow_rows_total", **PAIR, outcome="agree") == 2
    assert world.metric("sluice_router_shadow_rows_total", **PAIR, outcome="disagree") == 4
    shadow = [r for _, r in world.predlog.records if r.role == "shadow"]
    assert [r.request_id for r in shadow] == [f"r{i}" for i in range(6)]
    assert all(r.labels == ["1"] for r in shadow)
    diffs = world.client.get("/admin/v1/shadow/churn/diffs?limit=10", headers=ADMIN).json()
    assert {d["request_id"] for d in diffs["disagreements"]} == {"r1", "r2", "r4", "r5"}


def test_a_batch_never_exceeds_the_row_cap_by_more_than_a_copy(
    make_world: Callable[..., World],
) -> None:
    world = make_world(shadow_concurrency=1, shadow_linger_seconds=1.0, shadow_batch_rows=4)
    world.route(candidate="v2", mode="shadow")
    for i in range(0, 9, 3):
        rows = [{"customer_id": f"C{i + j}"} for j in range(3)]
        assert world.predict(*rows).status_code == 200
    world.drain_shadow()
    assert [len(c["rows"]) for c in world.servers[V2_URL].calls] == [6, 3]
    assert world.metric("sluice_router_shadow_rows_total", **PAIR, outcome="agree") == 3
