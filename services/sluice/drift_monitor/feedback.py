"""Ground truth: logged predictions kept for a while, joined to true labels by row id.

Predictions are kept in time buckets (one Redis hash per model and bucket, a field per
request) that expire ``ttl`` after the bucket ends: one HSET per batch of log entries, no
per-row key. A row id is the request id (one-row request) or ``rid/i`` (row i of a
batch), as ``PredictionRecord.row_ids`` says. A label joins at most once per row id; the
joined (true, predicted, score) triples of a version go to a capped list the rolling
performance is computed from.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Any, Protocol

import numpy as np
import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from sluice.drift_monitor.backends import state_key, text
from sluice.drift_monitor.batch import Batch
from sluice.drift_monitor.performance import label_text

BUCKETS_PER_TTL = 8
SHADOW_SUFFIX = "#shadow"
UNKNOWN_SHOWN = 20


class FeedbackStore(Protocol):
    async def remember(self, model: str, batch: Batch) -> None: ...
    async def join(self, model: str, ids: list[str], labels: list[Any]) -> dict[str, Any]: ...
    async def labelled(self, model: str, version: str) -> list[tuple[str, str, float]]: ...
    async def counters(self, model: str) -> dict[str, int]: ...


def candidates(row_id: str) -> list[tuple[str, int | None]]:
    """Where a row id may point: (request id, row index); None: a one-row request.

    >>> candidates("abc/2"), candidates("abc")
    ([('abc/2', None), ('abc', 2)], [('abc', None)])
    """
    out: list[tuple[str, int | None]] = [(row_id, None)]
    head, sep, tail = row_id.rpartition("/")
    if sep and head and tail.isdigit():
        out.append((head, int(tail)))
    return out


class RedisFeedbackStore:
    def __init__(self, client: aioredis.Redis | RedisCluster, ttl: float, keep: int) -> None:
        self.client, self.ttl, self.keep = client, ttl, keep
        self.bucket = ttl / BUCKETS_PER_TTL

    def _bucket_keys(self, model: str, bucket: int) -> tuple[str, str]:
        return state_key(model, "pred", str(bucket)), state_key(model, "fed", str(bucket))

    async def remember(self, model: str, batch: Batch) -> None:
        """Keep every entry's outputs under its request id (``#shadow`` for a mirrored copy)."""
        if not batch.entry_ids:
            return
        buckets = np.floor(batch.ts / self.bucket).astype(np.int64)
        fields = [
            rid if role == "primary" else rid + SHADOW_SUFFIX
            for rid, role in zip(batch.request_ids, batch.roles, strict=True)
        ]
        values = [
            v.encode() + b"\x1f" + y for v, y in zip(batch.versions, batch.outputs, strict=True)
        ]
        pipe = self.client.pipeline(transaction=False)
        for bucket in np.unique(buckets).tolist():
            pick = np.flatnonzero(buckets == bucket).tolist()
            pred = self._bucket_keys(model, bucket)[0]
            expire_at = int(((bucket + 1) * self.bucket + self.ttl) * 1000)
            pipe.hset(pred, mapping={fields[i]: values[i] for i in pick})
            pipe.pexpireat(pred, expire_at)
        await pipe.execute()

    async def join(self, model: str, ids: list[str], labels: list[Any]) -> dict[str, Any]:
        """Join labels to kept predictions; unknown, expired or repeated ids are counted."""
        now = time.time()
        newest = math.floor(now / self.bucket)
        live = list(range(newest, newest - BUCKETS_PER_TTL - 2, -1))
        wanted = sorted(
            {f for row in ids for rid, _ in candidates(row) for f in (rid, rid + SHADOW_SUFFIX)}
        )
        pipe = self.client.pipeline(transaction=False)
        for bucket in live:
            pipe.hmget(self._bucket_keys(model, bucket)[0], wanted)
        found: dict[str, tuple[int, bytes]] = {}
        for bucket, values in zip(live, await pipe.execute(), strict=True):
            for name, value in zip(wanted, values, strict=True):
                if value is not None and name not in found:
                    found[name] = (bucket, value)
        joins: list[tuple[str, int, list[tuple[str, str, str, float]]]] = []
        unknown: list[str] = []
        for row, truth in zip(ids, labels, strict=True):
            hit = _resolve(row, label_text(truth), found)
            if hit is None:
                unknown.append(row)
            else:
                joins.append((row, *hit))
        pipe = self.client.pipeline(transaction=False)
        for row, bucket, _ in joins:
            pipe.hsetnx(self._bucket_keys(model, bucket)[1], row, 1)
            pipe.pexpireat(
                self._bucket_keys(model, bucket)[1],
                int(((bucket + 1) * self.bucket + self.ttl) * 1000),
            )
        fresh = (await pipe.execute())[::2] if joins else []
        per_version: dict[str, list[bytes]] = defaultdict(list)
        for (_, _, triples), new in zip(joins, fresh, strict=True):
            if new:
                for version, *triple in triples:
                    per_version[version].append(orjson.dumps(triple))
        joined = sum(1 for new in fresh if new)
        counts = {"received": len(ids), "joined": joined, "duplicate": len(joins) - joined,
                  "unknown": len(unknown)}  # fmt: skip
        pipe = self.client.pipeline(transaction=False)
        for version, items in per_version.items():
            pipe.lpush(state_key(model, "joined", version), *items)
            pipe.ltrim(state_key(model, "joined", version), 0, self.keep - 1)
        for name, value in counts.items():
            pipe.hincrby(state_key(model, "feedback"), name, value)
        await pipe.execute()
        return {**counts, "unknown_ids": unknown[:UNKNOWN_SHOWN]}

    async def labelled(self, model: str, version: str) -> list[tuple[str, str, float]]:
        raw = await self.client.lrange(state_key(model, "joined", version), 0, self.keep - 1)
        out: list[tuple[str, str, float]] = []
        for item in raw:
            truth, predicted, score = orjson.loads(item)
            out.append((truth, predicted, score))
        return out

    async def counters(self, model: str) -> dict[str, int]:
        raw = await self.client.hgetall(state_key(model, "feedback"))
        return {text(k): int(v) for k, v in raw.items()}


def _resolve(
    row: str, truth: str, found: dict[str, tuple[int, bytes]]
) -> tuple[int, list[tuple[str, str, str, float]]] | None:
    """The bucket and (version, true, predicted, score) of each kept prediction of ``row``."""
    for rid, index in candidates(row):
        triples: list[tuple[str, str, str, float]] = []
        bucket = None
        for name in (rid, rid + SHADOW_SUFFIX):
            if name not in found:
                continue
            bucket_of, value = found[name]
            version, _, y = value.partition(b"\x1f")
            outputs = orjson.loads(y)
            rows = len(outputs["label"])
            i = 0 if index is None else index
            if (index is None and rows != 1) or i >= rows:
                continue
            bucket = bucket_of if bucket is None else bucket
            triples.append((version.decode(), truth, label_text(outputs["label"][i]),
                            float(outputs["score"][i])))  # fmt: skip
        if bucket is not None:
            return bucket, triples
    return None
