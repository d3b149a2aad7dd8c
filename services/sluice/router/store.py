"""What the router keeps in Redis besides the routing table (``sluice.core.routes``):
shadow disagreements and the prediction log. The protocols are in ``backends``; these are
their Redis implementations.

- ``sluice:shadow:{<model>}:diffs``      list of the newest disagreements (JSON)
- ``sluice:predlog:{<model>}``           the prediction-log stream (sluice.core.predlog)
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sluice.core import predlog

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
