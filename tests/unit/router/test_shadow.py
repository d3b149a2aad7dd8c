"""Shadow mode: the user gets stable's answer; the copy is compared and recorded."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.unit.router.conftest import ADMIN, V2_URL, World

PAIR = {"model": "churn", "stable": "v1", "candidate": "v2"}


def test_shadow_comparisons_are_recorded(world: World) -> None:
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
