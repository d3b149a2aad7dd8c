"""What the router counts for the rollout controller (sluice.core.tally): a candidate that
stable stood in for is the candidate's failure; a client's mistake is nobody's."""

from __future__ import annotations

import pytest

from tests.unit.router.conftest import V2_URL, World


def counts(world: World) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for (model, _), fields in world.service.tally.pending.items():
        assert model == "churn"
        for name, value in fields.items():
            version, _, counter = name.partition("|")
            mine = out.setdefault(version, {})
            mine[counter] = mine.get(counter, 0) + value
    return out


def test_answers_are_counted_per_version_with_latency_and_scores(world: World) -> None:
    world.route(candidate="v2", mode="canary", weight=50)
    for i in range(40):
        assert world.predict({"customer_id": f"C{i}"}).status_code == 200
    c = counts(world)
    assert c["v1"]["n"] + c["v2"]["n"] == 40
    assert c["v1"]["ok"] + c["v2"]["ok"] == 40
    assert "err" not in c["v1"] and "err" not in c["v2"]
    buckets = sum(v for k, v in c["v2"].items() if k.startswith("b"))
    assert buckets == c["v2"]["ok"]
    # v2 scores every row 0.9 (a sum of floats: how many depends on the split)
    assert c["v2"]["s"] == pytest.approx(0.9 * c["v2"]["rows"])


def test_a_candidate_replaced_by_stable_counts_as_its_failure(world: World) -> None:
    world.route(candidate="v2", mode="canary", weight=100)
    world.servers[V2_URL].fail = "500"
    for i in range(3):
        assert world.predict({"customer_id": f"C{i}"}).status_code == 200  # stable answered
    c = counts(world)
    assert c["v2"]["err"] == 3 and c["v2"]["n"] == 3
    assert c["v1"]["ok"] == 3


def test_a_clients_bad_request_is_not_the_versions_failure(world: World) -> None:
    world.route(candidate="v2", mode="canary", weight=100)
    world.servers[V2_URL].fail = "422"  # the model server refuses what the client sent
    resp = world.predict({"customer_id": "C1"})
    assert resp.status_code == 422
    c = counts(world)
    assert c["v2"].get("c4") == 1 and "err" not in c["v2"]


def test_shadow_copies_count_agreement_for_the_candidate(world: World) -> None:
    world.route(candidate="v2", mode="shadow")
    for i in range(12):
        assert world.predict({"customer_id": f"C{i}"}).status_code == 200
    world.drain_shadow()
    c = counts(world)
    assert c["v2"]["sh"] == 12
    # v2 says 0.9 (label 1) everywhere; v1 agrees only on "basic" rows (every third)
    assert c["v2"]["sha"] == 4
