"""What the router keeps in Redis: the routing table, shadow disagreements, the prediction
log. The protocols are in ``backends``; these are their Redis implementations.

Keys (the ``{router}`` hash tag keeps the table on one Redis Cluster shard, so the Lua
script that changes it is atomic):

- ``sluice:router:{router}:routes``     hash model -> route JSON (without revision)
- ``sluice:router:{router}:revisions``  hash model -> revision (kept across deletes)
- ``sluice:router:changes``             pub/sub channel, message = the changed model
- ``sluice:shadow:{<model>}:diffs``      list of the newest disagreements (JSON)
- ``sluice:predlog:{<model>}``           the prediction-log stream (sluice.core.predlog)
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sluice.core import predlog
from sluice.router.errors import RevisionConflict
from sluice.router.table import Route, TableError, check_route, merge_upstreams

log = logging.getLogger(__name__)

ROUTES = "sluice:router:{router}:routes"
REVISIONS = "sluice:router:{router}:revisions"
CHANNEL = "sluice:router:changes"

# KEYS: routes, revisions. ARGV: model, route JSON ("" deletes), expected revision ("" any),
# channel. Returns {new revision, previous revision}; {-1, current} on a revision mismatch.
_PUT = """
local cur = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= cur then return {-1, cur} end
local rev = cur + 1
redis.call('HSET', KEYS[2], ARGV[1], rev)
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], ARGV[1])
else redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('PUBLISH', ARGV[4], ARGV[1])
return {rev, cur}
"""


def diffs_key(model: str) -> str:
    return f"sluice:shadow:{{{model}}}:diffs"


class RedisRoutingStore:
    """The routing table in Redis: atomic revisioned changes, announced on pub/sub."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.redis = client
        self._put = client.register_script(_PUT)

    async def load(self) -> dict[str, Route]:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(ROUTES)
            pipe.hgetall(REVISIONS)
            raw, revisions = await pipe.execute()
        routes: dict[str, Route] = {}
        for key, value in raw.items():
            model = key.decode()
            try:
                route = Route.model_validate_json(value)
                route = check_route(route).model_copy(
                    update={"revision": int(revisions.get(key, 0))}
                )
            except (ValueError, TableError) as exc:
                log.error("ignoring the broken route of %r in Redis: %s", model, exc)
                continue
            routes[model] = route
        return routes

    async def put(self, route: Route, if_revision: int | None = None) -> Route:
        """Store ``route`` (already checked) as the next revision; announce it."""
        stamped = route.model_copy(update={"updated_at": time.time(), "revision": 0})
        body = stamped.model_dump_json(exclude={"revision"})
        rev = await self._run(route.model, body, if_revision)
        return stamped.model_copy(update={"revision": rev})

    async def delete(self, model: str, if_revision: int | None = None) -> int:
        return await self._run(model, "", if_revision)

    async def _run(self, model: str, body: str, if_revision: int | None) -> int:
        expected = "" if if_revision is None else str(if_revision)
        rev, cur = await self._put(keys=[ROUTES, REVISIONS], args=[model, body, expected, CHANNEL])
        if int(rev) < 0:
            raise RevisionConflict(
                f"the route of {model!r} is at revision {cur}, not {if_revision}; "
                "read it again and retry"
            )
        return int(rev)

    async def seed(self, seeds: Mapping[str, Route]) -> None:
        """Start-up: add the routes from settings that Redis lacks; add new versions to the
        ones it has (their policy, set by an operator, is kept)."""
        for _ in range(5):
            current = await self.load()
            try:
                for model, seeded in seeds.items():
                    now = current.get(model)
                    if now is None:
                        await self.put(seeded, if_revision=await self._revision(model))
                    elif (merged := merge_upstreams(now, seeded)) is not now:
                        await self.put(merged, if_revision=now.revision)
                return
            except RevisionConflict:
                continue  # another replica seeded meanwhile: read again
        raise RevisionConflict("could not seed the routing table: it kept changing")

    async def _revision(self, model: str) -> int:
        value = await self.redis.hget(REVISIONS, model)
        return int(value or 0)

    def subscribe(self) -> RedisSubscription:
        return RedisSubscription(self.redis)


class RedisSubscription:
    """Change announcements for the routing table."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._started = False

    async def wait(self, timeout: float) -> str | None:
        """The next changed model, or None after ``timeout`` seconds without one."""
        if not self._started:
            await self._pubsub.subscribe(CHANNEL)
            self._started = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            # None also for a (skipped) subscribe confirmation: wait out the rest
            message = await self._pubsub.get_message(timeout=max(0.0, deadline - loop.time()))
            if message is not None:
                data = message.get("data")
                return data.decode() if isinstance(data, bytes) else str(data)
            if loop.time() >= deadline:
                return None

    async def close(self) -> None:
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]


class RedisShadowSamples:
    """The newest disagreements per model, a capped Redis list."""

    def __init__(self, client: aioredis.Redis, keep: int) -> None:
        self.redis = client
        self.keep = keep

    async def add(self, model: str, entries: Sequence[dict[str, Any]]) -> None:
        key = diffs_key(model)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.lpush(key, *(orjson.dumps(e, option=orjson.OPT_SERIALIZE_NUMPY) for e in entries))
            pipe.ltrim(key, 0, self.keep - 1)
            await pipe.execute()

    async def newest(self, model: str, limit: int) -> list[dict[str, Any]]:
        raw = await self.redis.lrange(diffs_key(model), 0, max(0, limit - 1))
        return [orjson.loads(item) for item in raw]


class RedisPredictionLog:
    """Buffered writer of prediction-log records: ``write`` never waits and never raises.

    A background task drains the buffer in pipelined batches (XADD with approximate
    MAXLEN), waiting up to ``linger`` seconds after the first record so that a busy router
    writes many records per round trip. When the buffer is full, or Redis fails a batch,
    records are dropped and counted through ``on_drop(model, reason, n)``; written ones
    through ``on_written(model, n)``, once per model and batch.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        maxlen: int,
        buffer: int,
        batch: int,
        linger: float = 0.0,
        on_written: Callable[[str, int], None],
        on_drop: Callable[[str, str, int], None],
    ) -> None:
        self.redis = client
        self.maxlen = maxlen
        self.batch = batch
        self.linger = linger
        self.on_written = on_written
        self.on_drop = on_drop
        self._queue: asyncio.Queue[tuple[str, predlog.PredictionRecord]] = asyncio.Queue(buffer)
        self._task: asyncio.Task[None] | None = None
        self._writing = False

    def write(self, model: str, record: predlog.PredictionRecord) -> None:
        try:
            self._queue.put_nowait((model, record))
        except asyncio.QueueFull:
            self.on_drop(model, "buffer_full", 1)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="predlog-writer")

    async def close(self, drain_seconds: float = 2.0) -> None:
        """Write what is buffered (for up to ``drain_seconds``), then stop. A batch being
        written is waited for, not cancelled half-way through its round trip."""
        deadline = time.monotonic() + drain_seconds
        while (not self._queue.empty() or self._writing) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            items = [await self._queue.get()]
            self._writing = True
            try:
                if self.linger > 0 and self._queue.qsize() < self.batch:
                    await asyncio.sleep(self.linger)  # gather a batch: one round trip for many
                while len(items) < self.batch and not self._queue.empty():
                    items.append(self._queue.get_nowait())
                counts = collections.Counter(model for model, _ in items)
                async with self.redis.pipeline(transaction=False) as pipe:
                    for model, record in items:
                        fields: Any = predlog.encode(record)
                        pipe.xadd(
                            predlog.stream_key(model), fields, maxlen=self.maxlen, approximate=True
                        )
                    await pipe.execute()
            except (RedisError, OSError) as exc:
                log.warning("prediction log write failed: %s", exc)
                for model, n in counts.items():
                    self.on_drop(model, "redis_error", n)
                await asyncio.sleep(0.1)
                continue
            finally:
                self._writing = False
            for model, n in counts.items():
                self.on_written(model, n)
