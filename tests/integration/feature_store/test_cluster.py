"""The online store on a real three-node Redis Cluster: hash tags, per-shard batches."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from sluice.feature_store.backends import RedisOnlineStore
from sluice.feature_store.definitions import load_repo
from sluice.feature_store.materialize import materialize
from tests.integration.feature_store.conftest import definitions, write_source

pytestmark = pytest.mark.integration


def test_materialise_push_and_read_on_a_cluster(redis_cluster: str, tmp_path: Path) -> None:
    rows = [(f"K{i:03d}", 1.0, i, i / 2) for i in range(150)]
    source = write_source(tmp_path / "s.parquet", rows)
    repo_file = tmp_path / "f.yaml"
    text = definitions(repo_file, source).read_text()
    repo_file.write_text(text + text.split("views:")[1].replace("name: activity", "name: second"))
    views = list(load_repo(repo_file).views)
    admin = RedisCluster.from_url(redis_cluster)
    admin.flushall(target_nodes=RedisCluster.PRIMARIES)
    ids = [r[0] for r in rows]

    async def main() -> Any:
        store = RedisOnlineStore.from_url(redis_cluster, cluster=True, batch_size=40)
        try:
            await store.save_views(views, [], [])
            runs = await materialize(store, views, start=0, end=time.time())
            for node in admin.get_primaries():  # as after a failover: scripts are gone
                redis.Redis(port=node.port).script_flush()
            now = int(time.time() * 1e6)
            fresh_and_stale = [("K000", now, [999, 1.0]), ("K001", 0, [-1, -1.0])]
            pushed = await store.write(views[0], fresh_and_stale, kind="push")
            result = await store.get_online(
                ["activity:calls", "second:spend"], {"customer_id": ids}
            )
            again = await materialize(store, views, start=0, end=time.time())
            return runs, pushed, result, again
        finally:
            await store.aclose()

    runs, pushed, result, again = asyncio.run(main())
    assert [r.written for r in runs] == [150, 150]
    assert (pushed.written, pushed.skipped) == (1, 1)  # newer-wins on the cluster too
    assert result.values[0] == [999, *range(1, 150)]
    assert result.values[1] == [i / 2 for i in range(150)]
    assert all(s == "PRESENT" for column in result.statuses for s in column)
    assert [(r.written, r.skipped) for r in again] == [(0, 150), (0, 150)]

    # keys are spread over the three primaries, and one entity's views share a slot
    per_node = {node.port: redis.Redis(port=node.port).dbsize() for node in admin.get_primaries()}
    assert len(per_node) == 3 and all(n > 30 for n in per_node.values()), per_node
    keys = list(admin.scan_iter(match="sluice:fs:*{K007}", target_nodes=admin.PRIMARIES))
    assert len(keys) == 2 and len({admin.keyslot(k) for k in keys}) == 1
    admin.close()


def test_a_cluster_read_as_one_redis_is_unavailable_and_said_once(
    redis_cluster: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The cluster setting forgotten: a 503 (OnlineStoreUnavailable) on every call, not a
    crash, and one error line naming the setting, not one per call."""
    from sluice.feature_store import keys
    from sluice.feature_store.errors import OnlineStoreUnavailable

    admin = RedisCluster.from_url(redis_cluster)
    owner = admin.get_node_from_key(keys.VIEWS_KEY)
    other = next(n for n in admin.get_primaries() if n.port != owner.port)
    admin.close()

    async def main() -> None:
        store = RedisOnlineStore.from_url(f"redis://127.0.0.1:{other.port}/0")
        try:
            for _ in range(3):
                with pytest.raises(OnlineStoreUnavailable, match="not configured for"):
                    await store.refresh()
        finally:
            await store.aclose()

    with caplog.at_level("ERROR", logger="sluice.feature_store.backends"):
        asyncio.run(main())
    said = [r.getMessage() for r in caplog.records if "answered MOVED" in r.getMessage()]
    assert len(said) == 1 and "SLUICE_FEATURE_STORE_REDIS_CLUSTER" in said[0], said
