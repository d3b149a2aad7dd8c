"""What the router keeps in Redis besides the routing table (``sluice.core.routes``):
shadow disagreements and the prediction log. The protocols are in ``backends``; these are
their Redis implementations.

- ``sluice:shadow:{<model>}:diffs``      list of the newest disagreements (JSON)
- ``sluice:predlog:{<model>}``           the prediction-log stream (sluice.core.predlog);
  ``sluice:predlog:{<model>~<i>}`` its further streams when the log is spread
- ``sluice:ratelimit:{<client hash>}``   a client's GCRA state: the theoretical arrival
  time in Redis-clock microseconds (expires when the bucket is full again); the client
  (an API key or IP) is hashed, never stored
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from sluice.core import predlog
from sluice.router.ratelimit import BucketsUnavailable

log = logging.getLogger(__name__)


def diffs_key(model: str) -> str:
    return f"sluice:shadow:{{{model}}}:diffs"


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
    MAXLEN; a model's records go to its ``streams`` streams in turn), waiting up to
    ``linger`` seconds after the first record so that a busy router writes many records
    per round trip. On a Redis Cluster a batch is one pipeline per shard
    its models' streams are on, sent at once (redis-py's cluster pipeline). When the buffer
    is full, or Redis fails a batch, records are dropped and counted through
    ``on_drop(model, reason, n)``; written ones through ``on_written(model, n)``, once per
    model and batch. A batch that fails on one shard is counted dropped whole, though the
    other shards may have taken their records.
    """

    def __init__(
        self,
        client: aioredis.Redis | RedisCluster,
        *,
        maxlen: int,
        buffer: int,
        batch: int,
        linger: float = 0.0,
        streams: int = 1,
        on_written: Callable[[str, int], None],
        on_drop: Callable[[str, str, int], None],
    ) -> None:
        self.redis = client
        self.maxlen = maxlen
        self.batch = batch
        self.linger = linger
        self.on_written = on_written
        self.on_drop = on_drop
        self.streams = streams
        self._turn: collections.Counter[str] = collections.Counter()
        """Per model, how many records were sent: the next one's stream is this mod streams."""
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
                        shard = self._turn[model] % self.streams
                        self._turn[model] += 1
                        key = predlog.stream_key(model, shard)
                        pipe.xadd(key, fields, maxlen=self.maxlen, approximate=True)
                    await pipe.execute()
            except (RedisError, RedisClusterException, OSError) as exc:
                log.warning("prediction log write failed: %s", exc)
                for model, n in counts.items():
                    self.on_drop(model, "redis_error", n)
                await asyncio.sleep(0.1)
                continue
            finally:
                self._writing = False
            for model, n in counts.items():
                self.on_written(model, n)


# KEYS: the client's key. ARGV: period (microseconds per request), burst. Returns 0 when
# allowed, else the microseconds to wait. sluice.router.ratelimit.gcra, on Redis's clock
# (replicas' clocks never disagree); numbers stay exact (doubles, < 2^53 microseconds).
_GCRA = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[1])
local limit = period * tonumber(ARGV[2])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local new = tat + period
if new - now > limit then return math.ceil(new - now - limit) end
redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1)
return 0
"""


def bucket_key(client: str) -> str:
    digest = hashlib.blake2b(client.encode(), digest_size=12).hexdigest()
    return f"sluice:ratelimit:{{{digest}}}"


class RedisRateBuckets:
    """Every replica's rate-limit buckets in Redis: one EVALSHA per request."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._gcra = client.register_script(_GCRA)

    async def take(self, client: str, rate: float, burst: int, timeout: float) -> float:
        period = max(1, round(1_000_000 / rate))
        try:
            async with asyncio.timeout(timeout):
                wait = await self._gcra(keys=[bucket_key(client)], args=[period, burst])
        except TimeoutError:
            raise BucketsUnavailable(f"Redis did not answer within {timeout:g}s") from None
        except (RedisError, OSError) as exc:
            raise BucketsUnavailable(f"{type(exc).__name__}: {exc}") from None
        return int(wait) / 1_000_000
