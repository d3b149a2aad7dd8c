"""RedisOnlineStore against a real Redis: ttl on read, key TTL, newer-wins, one round trip."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from sluice.feature_store.backends import RedisOnlineStore
from sluice.feature_store.definitions import load_repo
from sluice.feature_store.materialize import materialize
from tests.integration.feature_store.conftest import T0, definitions, write_source

pytestmark = pytest.mark.integration
DAY = 86_400
Work = Callable[[RedisOnlineStore], Awaitable[Any]]


def with_store(url: str, repo_file: Path, work: Work, **kwargs: Any) -> Any:
    async def run() -> Any:
        store = RedisOnlineStore.from_url(url, **kwargs)
        try:
            await store.save_views(load_repo(repo_file).views, [], [])
            await store.refresh()
            return await work(store)
        finally:
            await store.aclose()

    return asyncio.run(run())


def commands(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()}


def test_ttl_is_enforced_on_read_and_the_key_ttl_follows_every_write(
    redis_url: str, tmp_path: Path
) -> None:
    repo_file = definitions(tmp_path / "f.yaml", tmp_path / "none.parquet", ttl="1s")
    view = load_repo(repo_file).views[0]
    raw = redis.Redis.from_url(redis_url)

    async def work(store: RedisOnlineStore) -> None:
        now_us = int(time.time() * 1e6)
        rows = [("fresh", now_us, [1, 1.0]), ("old", now_us - 5_000_000, [2, 2.0])]
        await store.write(view, rows, kind="push")
        first = await store.get_online(
            ["activity:calls"], {"customer_id": ["fresh", "old", "nobody"]}
        )
        assert first.statuses == [["PRESENT", "OUTSIDE_MAX_AGE", "NOT_FOUND"]]
        assert first.values == [[1, None, None]]
        key = next(k for k in raw.keys("sluice:fs:activity:*") if k.endswith(b"{fresh}"))
        assert 1000 < raw.pttl(key) <= 2000  # twice the view's ttl
        raw.pexpire(key, 100_000)
        # a rewrite that changes nothing (same timestamp) still refreshes the key's TTL
        result = await store.write(view, [("fresh", now_us, [9, 9.0])], kind="push")
        assert (result.written, result.skipped) == (0, 1)
        assert 1000 < raw.pttl(key) <= 2000
        await asyncio.sleep(1.05)
        later = await store.get_online(["activity:calls"], {"customer_id": ["fresh"]})
        assert later.statuses == [["OUTSIDE_MAX_AGE"]] and later.values == [[None]]
        await asyncio.sleep(1.0)  # two ttls after the last write Redis has dropped the key
        gone = await store.get_online(["activity:calls"], {"customer_id": ["fresh"]})
        assert gone.statuses == [["NOT_FOUND"]] and raw.exists(key) == 0

    with_store(redis_url, repo_file, work)


def test_newer_wins_between_push_and_materialise(redis_url: str, tmp_path: Path) -> None:
    source = write_source(tmp_path / "s.parquet", [("C1", 1, 10, 1.5), ("C2", 1, 20, 2.5)])
    repo_file = definitions(tmp_path / "f.yaml", source)
    view = load_repo(repo_file).views[0]
    day = lambda d: int((T0 + pd_days(d)).timestamp() * 1e6)  # noqa: E731

    async def work(store: RedisOnlineStore) -> None:
        # a streaming push lands first with a newer value for C1, an older one for C2
        pushed = await store.write(view, [("C1", day(2), [11, 1.6]), ("C2", day(0.5), [19, 2.4])],
                                   kind="push")  # fmt: skip
        assert (pushed.written, pushed.skipped) == (2, 0)
        runs = await materialize(store, [view], start=0, end=time.time())
        assert (runs[0].written, runs[0].skipped) == (1, 1)  # C2 replaced, C1 kept
        got = await store.get_online(["activity:*"], {"customer_id": ["C1", "C2"]})
        assert got.values == [[11, 20], [1.6, 2.5]]
        redis.Redis.from_url(redis_url).script_flush()  # as after a restart or failover
        stale = await store.write(view, [("C2", day(0.9), [0, 0.0])], kind="push")
        assert (stale.written, stale.skipped) == (0, 1)
        again = await store.get_online(["activity:calls"], {"customer_id": ["C2"]})
        assert again.values == [[20]]

    with_store(redis_url, repo_file, work)


def test_one_round_trip_per_read_whatever_the_entities_and_views(
    redis_url: str, tmp_path: Path
) -> None:
    rows = [(f"C{i:03d}", 1.0, i, i / 2) for i in range(100)]
    source = write_source(tmp_path / "s.parquet", rows)
    repo_file = tmp_path / "f.yaml"
    text = definitions(repo_file, source).read_text()
    repo_file.write_text(text + text.split("views:")[1].replace("name: activity", "name: second"))
    repo = load_repo(repo_file)
    raw = redis.Redis.from_url(redis_url)
    ids = [r[0] for r in rows]

    async def work(store: RedisOnlineStore) -> None:
        await materialize(store, list(repo.views), start=0, end=time.time())
        await store.get_online(["activity:calls"], {"customer_id": ["C000"]})  # warm connection
        for refs, entities in [
            (["activity:calls"], ids[:1]),
            (["activity:*", "second:*"], ids),
        ]:
            raw.config_resetstat()
            result = await store.get_online(refs, {"customer_id": entities})
            calls = {k: v for k, v in commands(raw).items() if k not in ("config", "info")}
            assert calls == {"mget": 1}, calls
            assert all(s == "PRESENT" for column in result.statuses for s in column)
        assert result.values[0] == list(range(100))

    with_store(redis_url, repo_file, work)


def pd_days(days: float) -> Any:
    import pandas as pd

    return pd.to_timedelta(days, unit="D")
