from __future__ import annotations

import asyncio

import pytest

from sluice.router.ratelimit import (
    RETRY_SECONDS,
    BucketsUnavailable,
    Fallback,
    RateLimiter,
    SharedLimiter,
    gcra,
    retry_after,
)


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


class Buckets:
    """The shared buckets: a fixed answer, or Redis away."""

    def __init__(self, wait: float | None) -> None:
        self.wait = wait
        self.calls: list[tuple[str, float, int, float]] = []

    @property
    def asked(self) -> int:
        return len(self.calls)

    async def take(self, client: str, rate: float, burst: int, timeout: float) -> float:
        self.calls.append((client, rate, burst, timeout))
        if self.wait is None:
            raise BucketsUnavailable("Redis did not answer within 0.05s")
        return self.wait


def limiter(buckets: Buckets, fallback: Fallback, now: list[float]) -> SharedLimiter:
    degraded: list[str] = []
    lim = SharedLimiter(
        buckets, 1.0, 2, timeout=0.05, fallback=fallback, clock=lambda: now[0],
        on_degraded=degraded.append,
    )  # fmt: skip
    lim.degraded = degraded  # type: ignore[attr-defined]
    return lim


def test_the_shared_answer_is_used_while_redis_answers() -> None:
    lim = limiter(Buckets(0.25), "open", [0.0])
    assert asyncio.run(lim.take("a")) == 0.25


@pytest.mark.parametrize(
    ("fallback", "waits"),
    [("open", [0.0, 0.0, 0.0]), ("local", [0.0, 0.0, 1.0]), ("closed", [1.0, 1.0, 1.0])],
)
def test_redis_away_is_decided_by_the_fallback_and_not_asked_again_at_once(
    fallback: Fallback, waits: list[float]
) -> None:
    buckets, now = Buckets(None), [0.0]
    lim = limiter(buckets, fallback, now)

    async def three() -> list[float]:
        return [await lim.take("a") for _ in range(3)]

    assert asyncio.run(three()) == pytest.approx(waits)
    assert buckets.asked == 1  # one timeout paid, then Redis left alone for a while
    assert lim.degraded == [fallback] * 3  # type: ignore[attr-defined]
    now[0] = RETRY_SECONDS + 0.1
    buckets.wait = 0.0
    assert asyncio.run(lim.take("a")) == 0.0
    assert buckets.asked == 2


def test_gcra_and_the_token_bucket_agree() -> None:
    rl, tat = RateLimiter(rate=4.0, burst=3), 0.0
    for now in (0.0, 0.0, 0.0, 0.0, 0.1, 0.25, 0.3, 1.0, 1.0, 1.0, 1.0):
        tat, wait = gcra(tat, now, 0.25, 3)
        assert wait == pytest.approx(rl.take("c", now))
