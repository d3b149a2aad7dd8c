from __future__ import annotations

from sluice.router.breaker import Breaker


def test_opens_after_threshold_failures_in_a_row() -> None:
    b = Breaker(threshold=3, cooldown=5)
    for t in range(2):
        b.record(False, now=t)
    b.record(True, now=2)
    assert b.state == "closed"
    for t in range(3):
        b.record(False, now=3 + t)
    assert b.state == "open"
    assert not b.allow(now=6)


def test_half_open_lets_one_probe_through_then_closes_or_reopens() -> None:
    b = Breaker(threshold=1, cooldown=5)
    b.record(False, now=0)
    assert b.allow(now=5)
    assert not b.allow(now=5.1)
    b.record(False, now=5.2)
    assert b.state == "open"
    assert not b.allow(now=9)
    assert b.allow(now=10.3)
    b.record(True, now=10.4)
    assert b.state == "closed"
    assert b.allow(now=10.5)


def test_a_lost_probe_is_replaced_after_another_cooldown() -> None:
    b = Breaker(threshold=1, cooldown=1)
    b.record(False, now=0)
    assert b.allow(now=1)
    assert not b.allow(now=1.5)
    assert b.allow(now=2.1)
