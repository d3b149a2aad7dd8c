"""The Redis side of the router against a real Redis: revisions, seeding, announcements,
the prediction-log writer (batched; on every shard of a Redis Cluster; dropped and counted
when Redis is away)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from sluice.core.predlog import PredictionRecord, decode, stream_key
from sluice.core.redisclient import HiredisPackingConnection, connect_cluster
from sluice.core.routes import (
    REVISIONS,
    ROUTES,
    RedisRoutingStore,
    RevisionConflict,
    parse_route,
)
from sluice.router.store import RedisPredictionLog, RedisShadowSamples
from tests.support.procs import free_port

V1 = {"upstreams": {"v1": "http://127.0.0.1:9001"}, "stable": "v1"}
V2 = {"upstreams": {"v1": "http://127.0.0.1:9001", "v2": "http://127.0.0.1:9002"}, "stable": "v2"}


def record(i: int) -> PredictionRecord:
    return PredictionRecord(f"r{i}", 1.0 + i, "v1", "primary", {"x": [i]}, ["1"], [0.5], 0.3)


def writer_on(
    client: aioredis.Redis | RedisCluster, drops: Counter[str] | None = None, **sizes: Any
) -> RedisPredictionLog:
    """A started prediction-log writer on ``client``, its drops counted in ``drops``."""
    counted = drops if drops is not None else Counter()
    writer = RedisPredictionLog(
        client,
        **{"maxlen": 100, "buffer": 1000, "batch": 50, **sizes},
        on_written=lambda *_: None,
        on_drop=lambda _, why, n: counted.update({why: n}),
    )
    writer.start()
    return writer


def test_changes_are_revisioned_announced_and_seeds_never_override(redis_url: str) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url)
        store = RedisRoutingStore(client)
        sub = store.subscribe()
        assert await sub.wait(0) is None
        first = await store.put(parse_route("churn", V1))
        assert first.revision == 1
        assert await sub.wait(1.0) == "churn"
        with pytest.raises(RevisionConflict):
            await store.put(parse_route("churn", V1), if_revision=0)
        seeded = {
            **V1,
            "upstreams": {**V1["upstreams"], "v2": "http://127.0.0.1:9002"},
            "candidate": "v2",
            "mode": "canary",
            "weight": 50,
        }
        await store.seed({"churn": parse_route("churn", seeded), "other": parse_route("other", V1)})
        routes = await store.load()
        assert set(routes["churn"].upstreams) == {"v1", "v2"}
        assert routes["churn"].mode is None  # the operator's policy is kept
        assert routes["churn"].revision == 2
        assert routes["other"].revision == 1
        assert await store.delete("other") == 2
        assert "other" not in await store.load()
        await sub.close()
        await client.aclose()

    asyncio.run(scenario())


def test_the_prediction_log_batches_and_trims(redis_url: str) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url)
        drops: Counter[str] = Counter()
        writer = writer_on(client, drops, linger=0.01)
        for i in range(500):
            writer.write("churn", record(i))
        await writer.close()
        entries = await client.xrange(stream_key("churn"))
        assert 100 <= len(entries) < 500  # approximately trimmed to maxlen
        assert decode(entries[-1][1]) == record(499)
        assert not drops
        samples = RedisShadowSamples(client, keep=3)
        await samples.add("churn", [{"n": i} for i in range(5)])
        assert await samples.newest("churn", 10) == [{"n": 4}, {"n": 3}, {"n": 2}]
        await client.aclose()

    asyncio.run(scenario())


def test_one_batch_of_many_models_lands_on_every_shard_of_a_cluster(redis_cluster: str) -> None:
    """Models whose streams hash to three shards, written in one batch: each stream holds
    its model's records, in order, on its own shard."""
    models = ("churn", "churn-eu", "churn-apac")

    async def scenario() -> tuple[dict[str, list[Any]], set[str], Counter[str]]:
        client = connect_cluster(redis_cluster)
        await client.delete(*(stream_key(m) for m in models))
        drops: Counter[str] = Counter()
        writer = writer_on(client, drops, linger=0.05)
        for i in range(60):
            writer.write(models[i % 3], record(i))
        await writer.close()
        entries = {m: await client.xrange(stream_key(m)) for m in models}
        shards = {client.get_node_from_key(stream_key(m)).name for m in models}
        # packed by hiredis on every node (redis-py's cluster client takes no connection
        # class of its own: connect_cluster sets it; in Python the writer costs 1.7x)
        assert {n.connection_class for n in client.get_nodes()} == {HiredisPackingConnection}
        await client.aclose()
        return entries, shards, drops

    entries, shards, drops = asyncio.run(scenario())
    assert len(shards) == 3
    assert not drops
    for n, model in enumerate(models):
        assert [decode(f) for _, f in entries[model]] == [record(i) for i in range(n, 60, 3)]


def test_one_models_log_spread_over_three_streams_uses_three_shards(redis_cluster: str) -> None:
    """``predlog_streams=3``: a model's records go to its three streams in turn, each in
    order; the streams' hash tags put them on the cluster's three shards."""

    async def scenario() -> tuple[list[list[Any]], set[str], Counter[str]]:
        client = connect_cluster(redis_cluster)
        keys = [stream_key("churn", shard) for shard in range(3)]
        await client.delete(*keys)
        drops: Counter[str] = Counter()
        writer = writer_on(client, drops, linger=0.05, streams=3)
        for i in range(60):
            writer.write("churn", record(i))
        await writer.close()
        entries = [await client.xrange(key) for key in keys]
        shards = {client.get_node_from_key(key).name for key in keys}
        await client.aclose()
        return entries, shards, drops

    entries, shards, drops = asyncio.run(scenario())
    assert len(shards) == 3 and not drops
    for shard, stream in enumerate(entries):
        assert [decode(f) for _, f in stream] == [record(i) for i in range(shard, 60, 3)]


def test_closing_the_prediction_log_writes_what_it_was_writing(redis_url: str) -> None:
    """A record taken for a batch (lingering, or on its round trip) is written at close,
    not cancelled half-way: a router shutting down keeps its last predictions."""

    async def scenario() -> list[Any]:
        client = aioredis.Redis.from_url(redis_url)
        writer = writer_on(client, buffer=10, linger=0.2)
        writer.write("churn", record(1))
        await asyncio.sleep(0.05)  # the writer took it and lingers for more
        await writer.close()
        entries: list[Any] = await client.xrange(stream_key("churn"))
        await client.aclose()
        return entries

    entries = asyncio.run(scenario())
    assert [decode(fields) for _, fields in entries] == [record(1)]


def test_prediction_log_never_blocks_when_redis_is_away() -> None:
    async def scenario() -> Counter[str]:
        dead = aioredis.Redis(
            port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
        )
        drops: Counter[str] = Counter()
        writer = writer_on(dead, drops, buffer=10, batch=5)
        for i in range(30):
            writer.write("churn", record(i))  # returns at once, whatever Redis does
        await writer.close(drain_seconds=5.0)
        await dead.aclose()
        return drops

    drops = asyncio.run(scenario())
    assert drops["buffer_full"] >= 20
    assert drops["redis_error"] >= 1


def test_a_lost_table_is_seen_and_reseeded_above_every_revision(redis_url: str) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url)
        store = RedisRoutingStore(client)
        await store.put(parse_route("churn", V1))
        await store.put(parse_route("churn", V1))
        await store.put(parse_route("gone", V1))
        await store.delete("gone")
        before = await store.snapshot()
        assert before.epoch is not None and before.highest == 2
        await store.delete("churn")  # every route deleted through the writer: not a loss
        assert (await store.snapshot()).epoch == before.epoch
        await client.flushall()  # what a restart without persistence does
        lost = await store.snapshot()
        assert lost.epoch is None and lost.routes == {} and lost.highest == 0
        routes = {"churn": parse_route("churn", V1), "fraud": parse_route("fraud", V1)}
        assert await store.reseed(routes, before.epoch, 1002) is None  # not the epoch seen
        epoch = await store.reseed(routes, None, 1002)
        assert epoch is not None
        assert await store.reseed(routes, None, 5000) is None  # another replica was first
        after = await store.snapshot()
        assert after.epoch == epoch
        assert {m: r.revision for m, r in after.routes.items()} == {"churn": 1002, "fraud": 1002}
        with pytest.raises(RevisionConflict):
            await store.put(parse_route("churn", V1), if_revision=2)  # read before the loss
        assert (await store.put(parse_route("churn", V1))).revision == 1003
        assert (await store.put(parse_route("new", V1))).revision == 1003  # above the floor
        await client.aclose()

    asyncio.run(scenario())


def test_a_table_gone_back_in_time_gets_the_later_routes_back(redis_url: str) -> None:
    """Same epoch, lower revisions (Redis lost its last writes): ``restore`` puts back the
    routes read at a higher revision, keeps the ones stored higher, and lifts everything."""

    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url)
        await client.flushall()
        store = RedisRoutingStore(client)
        await store.put(parse_route("churn", V1))
        await store.put(parse_route("fraud", V1))
        kept = {k: await client.hgetall(k) for k in (ROUTES, REVISIONS)}
        await store.put(parse_route("churn", V1))
        later = await store.put(parse_route("churn", V2))  # revisions 2 and 3, then lost
        fraud = (await store.snapshot()).routes["fraud"]
        seen = await store.snapshot()
        await client.delete(ROUTES, REVISIONS)  # what Redis kept: the state before
        for key, fields in kept.items():
            await client.hset(key, mapping=fields)
        await store.put(parse_route("fraud", V2))  # another writer, after: revision 2
        back = await store.snapshot()
        assert back.epoch == seen.epoch and back.highest < seen.highest
        routes = {"churn": later, "fraud": fraud, "declared": parse_route("declared", V1)}
        assert await store.reseed(routes, seen.epoch, 1002, restore=True) == seen.epoch
        after = await store.snapshot()
        assert after.routes["churn"].stable == "v2"  # read later than what was stored
        assert after.routes["fraud"].stable == "v2"  # stored later than what was read
        assert set(after.routes) == {"churn", "fraud", "declared"}
        assert {r.revision for r in after.routes.values()} == {1002}
        # without restore (another life), a stored route is never replaced
        await store.put(parse_route("churn", V1))
        stale = {"churn": later.model_copy(update={"revision": 5000})}
        await store.reseed(stale, seen.epoch, 1100)
        assert (await store.snapshot()).routes["churn"].stable == "v1"
        await client.aclose()

    asyncio.run(scenario())
