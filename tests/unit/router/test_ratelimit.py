from __future__ import annotations

import pytest

from sluice.router.ratelimit import RateLimiter, retry_after


def test_burst_then_refill_at_the_rate() -> None:
    rl = RateLimiter(rate=10, burst=5)
    assert [rl.take("a", 0.0) for _ in range(5)] == [0.0] * 5
    assert rl.take("a", 0.0) == pytest.approx(0.1)
    assert rl.take("a", 0.1) == 0.0


def test_clients_are_limited_separately_and_forgotten_oldest_first() -> None:
    rl = RateLimiter(rate=1, burst=1, max_clients=2)
    assert rl.take("a", 0) == 0.0
    assert rl.take("b", 0) == 0.0
    assert rl.take("a", 0) > 0
    assert rl.take("c", 0) == 0.0
    assert rl.take("b", 0) == 0.0  # b was forgotten: a full bucket again


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert retry_after(0.01) == "1"
    assert retry_after(3.5) == "4"


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(rate=0, burst=1)
