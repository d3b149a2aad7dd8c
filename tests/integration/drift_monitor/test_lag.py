"""How far the drift monitor's reading is behind the prediction log, on a real Redis."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from sluice.core.predlog import stream_key
from sluice.drift_monitor.backends import RedisPredictionLog


def test_lag_is_the_time_between_the_last_entry_read_and_the_newest(redis_url: str) -> None:
    async def scenario() -> list[float]:
        client = aioredis.Redis.from_url(redis_url)
        log = RedisPredictionLog(client, "drift", "replica-a")
        seen = [await log.lag_seconds("churn")]  # no stream yet
        await log.ensure_group("churn", 0, "0")
        seen.append(await log.lag_seconds("churn"))  # an empty stream, nothing read
        for ms in (1_000_000, 1_060_000, 1_120_000):  # three entries a minute apart
            await client.xadd(stream_key("churn"), {"v": "1"}, id=f"{ms}-0")
        await log.read([("churn", 0)], 1, 100)
        seen.append(await log.lag_seconds("churn"))  # read the first: two minutes behind
        await log.read([("churn", 0)], 1, 100)
        seen.append(await log.lag_seconds("churn"))
        await log.read([("churn", 0)], 10, 100)
        seen.append(await log.lag_seconds("churn"))  # caught up
        # the log spread over a second stream that is read up to a minute behind its newest
        await log.ensure_group("churn", 1, "0")
        for ms in (1_000_000, 1_060_000):
            await client.xadd(stream_key("churn", 1), {"v": "1"}, id=f"{ms}-0")
        await log.read([("churn", 1)], 1, 100)
        seen.append(await log.lag_seconds("churn", [0, 1]))  # the stream furthest behind
        await client.aclose()
        return seen

    assert asyncio.run(scenario()) == [0.0, 0.0, 120.0, 60.0, 0.0, 60.0]
