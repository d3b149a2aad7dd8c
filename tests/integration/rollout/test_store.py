"""The rollout store in a real Redis: a reconcile that read a rollout before it was deleted
cannot bring its status back for a later rollout of the same name."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from sluice.rollout.backends import RedisRolloutSource
from sluice.rollout.resource import Status, parse
from tests.integration.rollout.test_api import example

pytestmark = pytest.mark.integration


def test_a_save_after_the_delete_does_not_come_back_for_a_namesake(redis_url: str) -> None:
    async def scenario() -> tuple[Status, list[dict[str, Any]]]:
        client = aioredis.from_url(redis_url)
        try:
            source = RedisRolloutSource(client)
            await source.put(parse(example()))
            (read,) = await source.list()  # a reconcile reads it ...
            assert await source.delete(read.name)  # ... a person deletes it ...
            promoted = read.status.model_copy(update={"phase": "Promoted", "step": 5})
            await source.save_status(read, promoted)  # ... the reconcile saves late
            await source.event(read, "Normal", "Promoted", "v2 promoted")
            assert await source.list() == []
            await source.put(parse(example()))  # the same rollout applied again
            (again,) = await source.list()
            return again.status, await source.events(again.name)
        finally:
            await client.aclose()

    status, events = asyncio.run(scenario())
    assert (status.phase, status.step) == ("Pending", 0)
    assert events == []
