from __future__ import annotations

from typing import Any

import pytest

from sluice.core.routes import Route, RoutingTable, TableError, merge_upstreams, parse_route

UP = {"v1": {"urls": ["http://a:8000/"]}, "v2": "http://b:8000"}


def parse(**kw: Any) -> Route:
    return parse_route("churn", {"upstreams": UP, "stable": "v1", **kw})


def test_a_valid_route_is_normalised() -> None:
    r = parse(candidate="v2", mode="canary", weight=30)
    assert r.upstreams["v1"].urls == ("http://a:8000",)
    assert r.upstreams["v2"].urls == ("http://b:8000",)
    assert r.weights() == {"v1": 0.7, "v2": 0.3}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stable": "v3"}, "stable version 'v3' has no upstream"),
        ({"candidate": "v3", "mode": "canary"}, "candidate version 'v3' has no upstream"),
        ({"candidate": "v2", "mode": "canary", "weight": 101}, "weight"),
        ({"candidate": "v2", "mode": "canary", "weight": -1}, "weight"),
        ({"candidate": "v2"}, "needs a mode"),
        ({"mode": "canary"}, "needs a candidate"),
        ({"candidate": "v1", "mode": "shadow"}, "both 'v1'"),
        ({"candidate": "v2", "mode": "shadow", "weight": 10}, "canary mode only"),
        ({"candidate": "v2", "mode": "bluegreen", "mirror_percent": 10}, "canary and shadow"),
        ({"mode": "linear"}, "mode"),
        ({"upstreams": {"v1": {"urls": []}}}, "no upstream URL"),
        ({"upstreams": {"v1": "ftp://x"}}, "not an http"),
        ({"upstreams": {}}, "no upstreams"),
        ({"upstreams": {"V1!": "http://a:8000"}, "stable": "V1!"}, "version name"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_invalid_routes_are_refused_with_a_reason(change: dict[str, Any], message: str) -> None:
    with pytest.raises(TableError, match=message):
        parse(**change)


def test_shadow_mirrors_everything_by_default() -> None:
    assert parse(candidate="v2", mode="shadow").mirror == 100
    assert parse(candidate="v2", mode="canary", weight=5).mirror == 0


def test_seeding_adds_new_versions_and_keeps_the_policy() -> None:
    current = parse_route("churn", {"upstreams": {"v1": "http://a:8000"}, "stable": "v1"})
    seeded = parse(candidate="v2", mode="canary", weight=50)
    merged = merge_upstreams(current, seeded)
    assert set(merged.upstreams) == {"v1", "v2"}
    assert merged.mode is None
    assert merge_upstreams(merged, seeded) is merged


def test_table_snapshots_are_replaced_whole() -> None:
    table = RoutingTable()
    newer = table.replace(parse())
    assert table.get("churn") is None
    assert newer.get("churn") is not None
    assert newer.without("churn").get("churn") is None
