"""The window commit against a real Redis: idempotent on retry, refused without the lease."""

from __future__ import annotations

import asyncio

import pytest

from sluice.core.redisclient import connect
from sluice.drift_monitor.backends import RedisStateStore

pytestmark = pytest.mark.integration


def report(index: int) -> dict[str, object]:
    return {"index": index, "kind": "reference", "rows": 100}


def test_a_retried_commit_counts_its_rows_once_and_a_lost_lease_commits_nothing(
    redis_url: str,
) -> None:
    async def scenario() -> None:
        client = connect(redis_url)
        store = RedisStateStore(client)
        try:
            assert await store.acquire("churn", "replica-a", ttl=30)
            first = report(0)
            assert await store.commit(
                "churn", "replica-a", "v1", {"v1": "1-0"}, first, 100, None, 10
            )
            # the reply was lost and the monitor retries the very same window
            await store.commit("churn", "replica-a", "v1", {"v1": "1-0"}, first, 100, None, 10)
            assert await store.rows("churn") == {"v1": 100}
            assert len(await store.history("churn", "v1", 10)) == 1

            # a log on two streams: the window moves the cursor of each
            spread = {"v1": "2-0", "v1@1": "2-5"}
            assert await store.commit("churn", "replica-a", "v1", spread, report(1), 50, None, 10)
            assert await store.rows("churn") == {"v1": 150}

            # another replica does not hold the lease: its commit changes nothing
            moved = {"v1": "3-0", "v1@1": "3-0"}
            refused = await store.commit("churn", "replica-b", "v1", moved, report(2), 70, None, 10)
            assert not refused
            assert await store.rows("churn") == {"v1": 150}
            cursors, indexes, _ = await store.cursors("churn")
            assert cursors == spread and indexes == {"v1": 2}
        finally:
            await client.aclose()

    asyncio.run(scenario())
