from __future__ import annotations

import pytest

from sluice.router.codec import parse_v1
from sluice.router.enrich import MissingFeatures, Plan, VersionSchema, fill, plan, routing_key

V1 = VersionSchema(
    ("tenure", "plan"),
    entity_key="customer_id",
    refs={"tenure": "c:tenure", "plan": "c:plan"},
    defaults={"tenure": 12.0, "plan": "basic"},
)
V2 = VersionSchema(
    ("tenure", "calls"),
    entity_key="customer_id",
    refs={"tenure": "c:tenure", "calls": "c:calls"},
    defaults={"tenure": 12.0},
    nullable=frozenset({"calls"}),
)


def test_one_lookup_for_the_union_of_the_targeted_versions() -> None:
    frame = parse_v1({"instances": [{"customer_id": "C1", "plan": "premium"}]}, 8)
    assert plan(frame, [V1, V2]) == Plan("customer_id", ("c:tenure", "c:calls"), (0,), ("C1",))


def test_nothing_to_look_up_when_the_request_has_everything_or_no_entity() -> None:
    full = parse_v1({"instances": [{"customer_id": "C1", "tenure": 1, "plan": "a"}]}, 8)
    assert plan(full, [V1]) is None
    anonymous = parse_v1({"instances": [{"tenure": 1}]}, 8)
    assert plan(anonymous, [V1]) is None
    assert routing_key(anonymous, "customer_id") is None


def test_request_values_win_and_lookups_fill_the_rest() -> None:
    frame = parse_v1(
        {"instances": [{"customer_id": "C1", "plan": "premium"}, {"customer_id": "C2"}]}, 8
    )
    todo = plan(frame, [V1])
    assert todo is not None
    found = {
        "c:tenure": ([5.0, 7.0], ["PRESENT", "PRESENT"]),
        "c:plan": (["basic", "basic"], ["PRESENT", "PRESENT"]),
    }
    assert not fill(frame, [V1], "reject", (todo, found))
    assert frame.columns["plan"] == ["premium", "basic"]
    assert frame.columns["tenure"] == [5.0, 7.0]


@pytest.mark.parametrize("status", ["NOT_FOUND", "OUTSIDE_MAX_AGE", "NULL_VALUE"])
def test_missing_or_stale_values_follow_the_policy(status: str) -> None:
    def run(policy: str) -> tuple[list[object], dict[tuple[str, str, str], int]]:
        frame = parse_v1({"instances": [{"customer_id": "C1", "plan": "a"}]}, 8)
        todo = Plan("customer_id", ("c:tenure",), (0,), ("C1",))
        counts = fill(frame, [V1], policy, (todo, {"c:tenure": ([None], [status])}))  # type: ignore[arg-type]
        return frame.columns["tenure"], dict(counts)

    assert run("default") == ([12.0], {("tenure", status, "default"): 1})
    with pytest.raises(MissingFeatures, match="tenure") as caught:
        run("reject")
    assert dict(caught.value.counts) == {("tenure", status, "reject"): 1}


def test_a_null_is_kept_where_the_feature_may_be_missing() -> None:
    frame = parse_v1({"instances": [{"customer_id": "C1", "tenure": 3}]}, 8)
    todo = Plan("customer_id", ("c:calls",), (0,), ("C1",))
    fill(frame, [V2], "reject", (todo, {"c:calls": ([None], ["NULL_VALUE"])}))
    assert frame.columns["calls"] == [None]


def test_default_policy_without_a_training_default_still_rejects() -> None:
    frame = parse_v1({"instances": [{"customer_id": "C1", "tenure": 3}]}, 8)
    with pytest.raises(MissingFeatures, match="no training default"):
        fill(frame, [VersionSchema(("x",))], "default")
