"""Traffic tallies against a real Redis: every router replica's counts add up in the same
seconds, and counts made while Redis is away arrive once it is back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from sluice.core.tally import RedisTallyWriter, Tally, read_window
from tests.support.procs import free_port, redis_on

pytestmark = pytest.mark.integration
T0 = 1_700_000_000


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


def test_two_routers_counts_add_up_per_second(redis_url: str) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url)
        clock = Clock()
        tallies = [Tally(clock), Tally(clock)]
        writers = [RedisTallyWriter(client, t, interval=1, retention=60) for t in tallies]
        for i in range(30):
            clock.now = T0 + i / 10  # three seconds of traffic
            tallies[i % 2].answered("churn", "v2", 0.004, [0.25])
            tallies[i % 2].failed("churn", "v1")
        tallies[0].client_error("churn", "v2")
        tallies[1].shadow("churn", "v2", rows=10, agreed=9, abs_diff=0.5)
        for writer in writers:
            assert await writer.flush()
        window = await read_window(client, "churn", T0, T0 + 3)
        assert window["v2"]["n"] == 31 and window["v2"]["ok"] == 30
        assert window["v2"]["c4"] == 1 and window["v1"]["err"] == 30
        assert window["v2"]["s"] == pytest.approx(7.5)
        assert (window["v2"]["sh"], window["v2"]["sha"]) == (10, 9)
        first_second = await read_window(client, "churn", T0, T0 + 1)
        assert first_second["v1"]["err"] == 10
        ttl = await client.ttl(f"sluice:tally:{{churn}}:{T0}")
        assert 0 < ttl <= 60
        await client.aclose()

    asyncio.run(scenario())


def test_counts_made_while_redis_is_away_arrive_when_it_is_back(tmp_path: Path) -> None:
    port = free_port()

    async def scenario() -> None:
        client = aioredis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
        clock = Clock()
        tally = Tally(clock)
        writer = RedisTallyWriter(client, tally, interval=1, retention=60)
        tally.answered("churn", "v1", 0.002, [0.5])
        assert not await writer.flush()  # nothing listens on the port yet
        clock.now += 1
        tally.answered("churn", "v1", 0.002, [0.5])
        with redis_on(port, tmp_path / "redis"):
            assert await writer.flush()
            window = await read_window(client, "churn", T0, T0 + 2)
            assert window["v1"]["n"] == 2
            assert (await read_window(client, "churn", T0, T0 + 1))["v1"]["n"] == 1
        await client.aclose()

    asyncio.run(scenario())
