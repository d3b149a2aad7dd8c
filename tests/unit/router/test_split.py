from __future__ import annotations

import pytest

from sluice.core.routes import Route
from sluice.router.split import BUCKETS, Decision, bucket, decide, in_canary, mirrored

KEYS = [f"customer-{i}" for i in range(10_000)]


def route(**kw: object) -> Route:
    base: dict[str, object] = {"model": "m", "upstreams": {}, "stable": "v1"}
    return Route.model_validate({**base, **kw})


def test_buckets_are_stable_and_in_range() -> None:
    assert bucket("C1") == 4245
    assert all(0 <= bucket(k) < BUCKETS for k in KEYS[:1000])
    assert bucket("C1") == bucket("C1")


@pytest.mark.parametrize("weight", [1, 5, 10, 25, 50, 90])
def test_observed_split_over_10000_keys_is_within_one_point(weight: int) -> None:
    share = sum(in_canary(bucket(k), weight) for k in KEYS) / len(KEYS)
    assert abs(share - weight / 100) <= 0.01


def test_a_key_on_the_candidate_stays_there_while_the_weight_grows() -> None:
    buckets = [bucket(k) for k in KEYS]
    before: set[int] = set()
    for weight in (0, 1, 5, 10, 20, 50, 80, 100):
        now = {i for i, b in enumerate(buckets) if in_canary(b, weight)}
        assert before <= now
        before = now
    assert len(before) == len(KEYS)


def test_canary_decision_falls_back_to_stable() -> None:
    r = route(candidate="v2", mode="canary", weight=30)
    assert decide(r, 100) == Decision("v2", fallback="v1")
    assert decide(r, 5000) == Decision("v1")


def test_pin_wins_over_every_mode() -> None:
    for mode in ("canary", "shadow", "bluegreen"):
        r = route(candidate="v2", mode=mode, weight=30 if mode == "canary" else 0)
        assert decide(r, 9999, pin="v2") == Decision("v2", pinned=True)


def test_bluegreen_sends_everything_to_the_active_colour() -> None:
    r = route(candidate="v2", mode="bluegreen")
    assert {decide(r, b).primary for b in range(0, BUCKETS, 7)} == {"v1"}


def test_shadow_mirrors_the_configured_share() -> None:
    r = route(candidate="v2", mode="shadow")
    assert all(decide(r, b) == Decision("v1", shadow="v2") for b in (0, 5000, 9999))
    half = route(candidate="v2", mode="shadow", mirror_percent=50)
    share = sum(mirrored(bucket(k), half) for k in KEYS) / len(KEYS)
    assert abs(share - 0.5) <= 0.01


def test_canary_mirror_copies_stable_traffic_only() -> None:
    r = route(candidate="v2", mode="canary", weight=10, mirror_percent=20)
    decisions = [decide(r, bucket(k)) for k in KEYS]
    mirrored_share = sum(d.shadow == "v2" for d in decisions) / len(KEYS)
    assert abs(mirrored_share - 0.2) <= 0.01
    assert all(d.primary == "v1" for d in decisions if d.shadow)


def test_targets_list_each_version_once() -> None:
    assert Decision("v2", fallback="v1", shadow="v1").targets() == ("v2", "v1")
