"""Online reads as pure functions (retrieval.py): validation, statuses, ttl on read."""

from __future__ import annotations

from typing import Any

import pytest

from sluice.core.errors import InvalidInput, PayloadTooLarge
from sluice.feature_store.codec import encode
from sluice.feature_store.errors import UnknownFeature, UnknownView
from sluice.feature_store.retrieval import OnlineResult, assemble, plan_read
from tests.unit.feature_store.fakes import view

NOW_US = 1_800_000_000_000_000
PROFILE = view("profile", [("age", "int64"), ("plan", "string")], ttl=3600)
ACTIVITY = view("activity", [("calls", "int64"), ("spend", "float64")], ttl=60)
PRODUCT = view("product", [("price", "float64")], join_key="product_id", dtype="int64")
VIEWS = {v.name: v for v in (PROFILE, ACTIVITY, PRODUCT)}


def read(refs: list[str], ids: list[Any], stored: dict[str, bytes]) -> OnlineResult:
    plan = plan_read(refs, {"customer_id": ids}, VIEWS, max_entities=100)
    return assemble(plan, [stored.get(k) for k in plan.keys], NOW_US)


def key(view_name: str, entity: str) -> str:
    plan = plan_read([f"{view_name}:*"], {"customer_id": [entity]}, VIEWS, max_entities=1)
    return plan.keys[0]


def test_one_key_per_entity_and_view_in_request_order() -> None:
    plan = plan_read(
        ["activity:spend", "profile:*", "activity:calls"],
        {"customer_id": ["a", "b", "c"]},
        VIEWS,
        max_entities=10,
    )
    assert [v.name for v in plan.views] == ["activity", "profile"]
    assert len(plan.keys) == 6 and plan.keys[0].startswith("sluice:fs:activity:")
    assert plan.keys[0].endswith("{a}") and plan.keys[5].endswith("{c}")
    assert [c.ref for c in plan.columns] == [
        "activity:spend", "profile:age", "profile:plan", "activity:calls",
    ]  # fmt: skip


def test_statuses_present_null_not_found_and_outside_max_age() -> None:
    stored = {
        key("profile", "fresh"): encode(NOW_US - 10_000_000, [41, None]),
        key("profile", "stale"): encode(NOW_US - 3_601_000_000, [50, "gold"]),
        key("profile", "edge"): encode(NOW_US - 3_600_000_000, [60, "basic"]),
    }
    result = read(["profile:age", "profile:plan"], ["fresh", "stale", "edge", "gone"], stored)
    assert result.feature_refs == ["profile:age", "profile:plan"]
    assert result.values == [[41, None, 60, None], [None, None, "basic", None]]
    assert result.statuses == [
        ["PRESENT", "OUTSIDE_MAX_AGE", "PRESENT", "NOT_FOUND"],
        ["NULL_VALUE", "OUTSIDE_MAX_AGE", "PRESENT", "NOT_FOUND"],
    ]
    times = result.event_timestamps[0]
    assert times == [(NOW_US - 10_000_000) / 1e6, (NOW_US - 3_601_000_000) / 1e6,
                     (NOW_US - 3_600_000_000) / 1e6, None]  # fmt: skip
    assert result.counts == {
        "profile": {"PRESENT": 3, "NULL_VALUE": 1, "OUTSIDE_MAX_AGE": 2, "NOT_FOUND": 2}
    }


def test_a_stale_value_is_withheld_never_present() -> None:
    # Feast's long-standing bug: stale values came back as PRESENT. Ours do not come back.
    stored = {key("activity", "a"): encode(NOW_US - 61_000_000, [3, 9.5])}
    result = read(["activity:*"], ["a"], stored)
    assert result.values == [[None], [None]]
    assert result.statuses == [["OUTSIDE_MAX_AGE"], ["OUTSIDE_MAX_AGE"]]


def test_unreadable_bytes_are_not_found() -> None:
    stored = {
        key("profile", "a"): b"\x07garbage",
        key("profile", "b"): encode(NOW_US, [1, "x", "extra"]),
    }
    assert read(["profile:age"], ["a", "b"], stored).statuses == [["NOT_FOUND", "NOT_FOUND"]]


def test_all_present_fast_path_matches() -> None:
    ids = [f"C{i}" for i in range(50)]
    stored = {key("profile", e): encode(NOW_US, [i, f"p{i}"]) for i, e in enumerate(ids)}
    result = read(["profile:plan", "profile:age"], ids, stored)
    assert result.values == [[f"p{i}" for i in range(50)], list(range(50))]
    assert result.statuses == [["PRESENT"] * 50] * 2
    assert result.counts == {"profile": {"PRESENT": 100}}


@pytest.mark.parametrize(
    ("refs", "entities", "error", "message"),
    [
        ([], {"customer_id": ["a"]}, InvalidInput, "list at least one"),
        ("profile:age", {"customer_id": ["a"]}, InvalidInput, "list at least one"),
        (["profile"], {"customer_id": ["a"]}, InvalidInput, "'profile' is not 'view:feature'"),
        (["nope:x"], {"customer_id": ["a"]}, UnknownView, "view 'nope' is not registered"),
        (["profile:x"], {"customer_id": ["a"]}, UnknownFeature, r"no feature 'x' \(age, plan\)"),
        (["profile:*", "profile:age"], {"customer_id": ["a"]}, InvalidInput, "requested twice"),
        (["profile:age"], {"user_id": ["a"]}, InvalidInput,
         "keyed by 'customer_id', not 'user_id'"),
        (["profile:age"], {"customer_id": ["a"], "x": [1]}, InvalidInput, "exactly one join key"),
        (["profile:age"], {"customer_id": []}, InvalidInput, "list at least one value"),
        (["profile:age"], {"customer_id": "a"}, InvalidInput, "list at least one value"),
        (["profile:age"], {"customer_id": ["a", 7]}, InvalidInput,
         r"entities.customer_id\[1\]: expected a string, got int"),
        (["profile:age"], {"customer_id": [""]}, InvalidInput, "1 to 1024 characters"),
        (["product:price"], {"product_id": ["7"]}, InvalidInput, "expected an integer, got str"),
        (["product:price"], {"product_id": [True]}, InvalidInput, "expected an integer, got bool"),
        (["profile:age", "product:price"], {"customer_id": ["a"]}, InvalidInput,
         "different entities"),
    ],
)  # fmt: skip
def test_bad_requests_name_what_is_wrong(
    refs: Any, entities: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        plan_read(refs, entities, VIEWS, max_entities=5)


def test_too_many_entities_is_413() -> None:
    with pytest.raises(PayloadTooLarge, match="6 values, over the limit of 5"):
        plan_read(["profile:age"], {"customer_id": list("abcdef")}, VIEWS, max_entities=5)


def test_nulls_when_every_entity_is_present() -> None:
    stored = {
        key("profile", "a"): encode(NOW_US, [1, None]),
        key("profile", "b"): encode(NOW_US, [None, "nullable"]),  # "null" inside a string
        key("profile", "c"): encode(NOW_US, [3, "x"]),
    }
    result = read(["profile:age", "profile:plan"], ["a", "b", "c"], stored)
    assert result.values == [[1, None, 3], [None, "nullable", "x"]]
    assert result.statuses == [
        ["PRESENT", "NULL_VALUE", "PRESENT"],
        ["NULL_VALUE", "PRESENT", "PRESENT"],
    ]
    assert result.counts == {"profile": {"PRESENT": 4, "NULL_VALUE": 2}}
    assert read(["profile:plan"], ["b"], stored).statuses == [["PRESENT"]]
