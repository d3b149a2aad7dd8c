"""The monitor's outside things: the prediction log, the shared state, ground truth, alerts.

One Protocol per role and its real implementation (Redis; an HTTP webhook). Every key of
a model carries the model's hash tag, ``sluice:drift:{model}:...``, so a model's state
lives on one Redis Cluster shard and a Lua script may touch all of it at once.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import httpx
import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from sluice.core.lease import RedisLease
from sluice.core.predlog import parse_stream_key, stream_key
from sluice.drift_monitor.batch import RawEntry
from sluice.drift_monitor.windows import parse_id

log = logging.getLogger(__name__)

STREAM_PATTERN = "sluice:predlog:{*}"
REPLICAS_KEY = "sluice:drift:replicas"


def state_key(model: str, *parts: str) -> str:
    """``state_key("churn", "latest")`` -> ``sluice:drift:{churn}:latest``."""
    return ":".join((f"sluice:drift:{{{model}}}", *parts))


Stream = tuple[str, int]
"""A model and one of its streams (``sluice.core.predlog.stream_key``)."""


class PredictionLog(Protocol):
    """The router's per-model streams, read through a consumer group."""

    async def streams(self) -> dict[str, list[int]]: ...
    async def ensure_group(self, model: str, shard: int, start: str) -> bool: ...
    async def claim(
        self, model: str, shard: int, start: str, count: int
    ) -> tuple[str, list[RawEntry]]: ...
    async def read(
        self, streams: list[Stream], count: int, block_ms: int
    ) -> dict[Stream, list[RawEntry]]: ...
    async def ack(self, model: str, shard: int, ids: list[str]) -> None: ...
    async def lag_seconds(self, model: str, shards: Iterable[int]) -> float: ...


class RedisPredictionLog:
    def __init__(self, client: aioredis.Redis | RedisCluster, group: str, consumer: str) -> None:
        self.client, self.group, self.consumer = client, group, consumer
        self.cluster = isinstance(client, RedisCluster)

    async def streams(self) -> dict[str, list[int]]:
        """Every model with a log, and the streams its log is on."""
        found: dict[str, set[int]] = {}
        async for key in self.client.scan_iter(match=STREAM_PATTERN, count=500, _type="stream"):
            model, shard = parse_stream_key(text(key))
            found.setdefault(model, set()).add(shard)
        return {model: sorted(shards) for model, shards in sorted(found.items())}

    async def ensure_group(self, model: str, shard: int, start: str) -> bool:
        """Make the group on the stream, reading from ``start`` (``0`` or ``$``), unless it
        is there already; True when it was made now."""
        try:
            await self.client.xgroup_create(
                stream_key(model, shard), self.group, id=start, mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            return False
        return True

    async def claim(
        self, model: str, shard: int, start: str, count: int
    ) -> tuple[str, list[RawEntry]]:
        """Take over pending entries from ``start`` (whoever held them); returns the next start."""
        reply = await self.client.xautoclaim(
            stream_key(model, shard), self.group, self.consumer, 0, start_id=start, count=count
        )
        next_start = text(reply[0])
        return next_start, [_entry(e) for e in reply[1] if e is not None]

    async def read(
        self, streams: list[Stream], count: int, block_ms: int
    ) -> dict[Stream, list[RawEntry]]:
        """New entries of ``streams``, up to ``count`` each, waiting up to ``block_ms`` for
        the first. One XREADGROUP for every stream on one Redis; on a cluster, whose streams
        are in different slots, one non-blocking read per stream, sent at once, and a pause
        of ``block_ms`` when none had anything (cancelling a blocked read could leave what
        it delivered pending on this consumer until a takeover)."""
        if not streams:
            await asyncio.sleep(block_ms / 1000)
            return {}
        if not self.cluster:
            return _by_stream(
                await self.client.xreadgroup(
                    self.group,
                    self.consumer,
                    {stream_key(*s): ">" for s in streams},
                    count=count,
                    block=block_ms,
                )
            )
        replies = await asyncio.gather(
            *(
                self.client.xreadgroup(self.group, self.consumer, {stream_key(*s): ">"}, count)
                for s in streams
            )
        )
        out = {s: e for reply in replies for s, e in _by_stream(reply).items() if e}
        if not out:
            await asyncio.sleep(block_ms / 1000)
        return out

    async def lag_seconds(self, model: str, shards: Iterable[int] = (0,)) -> float:
        """How far the group's reading is behind the newest entry written: the time between
        the last entry delivered to the group and the newest (0 when caught up); of a log
        on several streams, the stream furthest behind."""
        return max([await self._lag(stream_key(model, shard)) for shard in shards], default=0.0)

    async def _lag(self, key: str) -> float:
        try:
            stream = await self.client.xinfo_stream(key)
            groups = await self.client.xinfo_groups(key)
        except ResponseError:  # no stream (yet)
            return 0.0
        newest = text(stream["last-generated-id"])
        read = next(
            (text(g["last-delivered-id"]) for g in groups if text(g["name"]) == self.group),
            "0-0",
        )
        if read == "0-0":  # a group made at "$" that has read nothing: since it was made
            return 0.0
        return max(0.0, (parse_id(newest)[0] - parse_id(read)[0]) / 1000)

    async def ack(self, model: str, shard: int, ids: list[str]) -> None:
        for i in range(0, len(ids), 5000):
            await self.client.xack(stream_key(model, shard), self.group, *ids[i : i + 5000])


def text(value: bytes | str) -> str:
    """A Redis reply item as text."""
    return value.decode() if isinstance(value, bytes) else value


def _by_stream(reply: Any) -> dict[Stream, list[RawEntry]]:
    """XREADGROUP's reply (RESP2: a list of [stream, entries]) by model and stream."""
    return {
        parse_stream_key(text(key)): [_entry(e) for e in entries] for key, entries in reply or []
    }


def _entry(raw: Any) -> RawEntry:
    entry_id, fields = raw
    return text(entry_id), fields or None


_COMMIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(redis.call('HGET', KEYS[3], ARGV[2]) or '0') >= tonumber(ARGV[3]) then return 2 end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[4], ARGV[2], ARGV[4])
redis.call('LPUSH', KEYS[5], ARGV[4])
redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[5]) - 1)
redis.call('HINCRBY', KEYS[6], ARGV[2], ARGV[6])
if ARGV[7] ~= '' then redis.call('HSET', KEYS[7], ARGV[7], ARGV[8]) end
for i = 9, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
return 1
"""


class StateStore(Protocol):
    """Leases, committed windows (reports + cursors) and alert streaks, shared by replicas."""

    async def heartbeat(self, replica: str, ttl: float) -> int: ...
    async def acquire(self, model: str, token: str, ttl: float) -> bool: ...
    async def renew(self, model: str, token: str, ttl: float) -> bool: ...
    async def release(self, model: str, token: str) -> None: ...
    async def cursors(
        self, model: str
    ) -> tuple[dict[str, str], dict[str, int], dict[str, Any]]: ...
    async def commit(
        self, model: str, token: str, key: str, cursors: dict[str, str],
        report: dict[str, Any], rows: int, streak: tuple[str, dict[str, Any]] | None,
        history: int,
    ) -> bool: ...  # fmt: skip
    async def set_streak(self, model: str, version: str, streak: dict[str, Any]) -> None: ...
    async def latest(self, model: str) -> dict[str, dict[str, Any]]: ...
    async def history(self, model: str, key: str, count: int) -> list[dict[str, Any]]: ...
    async def streaks(self, model: str) -> dict[str, Any]: ...
    async def rows(self, model: str) -> dict[str, int]: ...
    async def watched(self) -> list[str]: ...


class RedisStateStore:
    def __init__(self, client: aioredis.Redis | RedisCluster) -> None:
        self.client = client
        self._commit = client.register_script(_COMMIT)
        self._lease = RedisLease(client)

    async def heartbeat(self, replica: str, ttl: float) -> int:
        """Say this replica is alive; return how many replicas are."""
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(REPLICAS_KEY, {replica: now})
        pipe.zremrangebyscore(REPLICAS_KEY, "-inf", now - ttl)
        pipe.zcard(REPLICAS_KEY)
        return int((await pipe.execute())[-1])

    async def acquire(self, model: str, token: str, ttl: float) -> bool:
        return await self._lease.acquire(state_key(model, "lease"), token, ttl)

    async def renew(self, model: str, token: str, ttl: float) -> bool:
        return await self._lease.renew(state_key(model, "lease"), token, ttl)

    async def release(self, model: str, token: str) -> None:
        await self._lease.release(state_key(model, "lease"), token)

    async def cursors(self, model: str) -> tuple[dict[str, str], dict[str, int], dict[str, Any]]:
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(state_key(model, "cursor"))
        pipe.hgetall(state_key(model, "index"))
        cursors, indexes = await pipe.execute()
        return (
            {text(k): v.decode() for k, v in cursors.items()},
            {text(k): int(v) for k, v in indexes.items()},
            await self.streaks(model),
        )

    async def commit(
        self, model: str, token: str, key: str, cursors: dict[str, str],
        report: dict[str, Any], rows: int, streak: tuple[str, dict[str, Any]] | None,
        history: int,
    ) -> bool:  # fmt: skip
        """Store a closed window atomically with its cursors (``cursor_field`` -> last id);
        refused if the lease is lost.

        Idempotent: a window whose index is already stored is not applied again (a retry
        after a commit that landed but whose reply was lost counts nothing twice).
        """
        keys = [state_key(model, p) for p in ("lease", "cursor", "index", "latest")]
        keys += [
            state_key(model, "history", key),
            state_key(model, "rows"),
            state_key(model, "streak"),
        ]
        body = orjson.dumps(report, option=orjson.OPT_SERIALIZE_NUMPY)
        version, state = streak if streak else ("", {})
        args = [token, key, report["index"] + 1, body, history, rows, version,
                orjson.dumps(state), *(x for pair in cursors.items() for x in pair)]  # fmt: skip
        return bool(await self._commit(keys=keys, args=args))

    async def set_streak(self, model: str, version: str, streak: dict[str, Any]) -> None:
        await self.client.hset(state_key(model, "streak"), version, orjson.dumps(streak))

    async def latest(self, model: str) -> dict[str, dict[str, Any]]:
        raw = await self.client.hgetall(state_key(model, "latest"))
        return {text(k): orjson.loads(v) for k, v in raw.items()}

    async def history(self, model: str, key: str, count: int) -> list[dict[str, Any]]:
        raw = await self.client.lrange(state_key(model, "history", key), 0, count - 1)
        return [orjson.loads(v) for v in raw]

    async def streaks(self, model: str) -> dict[str, Any]:
        raw = await self.client.hgetall(state_key(model, "streak"))
        return {text(k): orjson.loads(v) for k, v in raw.items()}

    async def rows(self, model: str) -> dict[str, int]:
        raw = await self.client.hgetall(state_key(model, "rows"))
        return {text(k): int(v) for k, v in raw.items()}

    async def watched(self) -> list[str]:
        found = set()
        async for key in self.client.scan_iter(match="sluice:drift:{*}:latest", count=500):
            name = key.decode()
            found.add(name[name.index("{") + 1 : name.rindex("}")])
        return sorted(found)


class AlertSink(Protocol):
    async def send(self, payload: dict[str, Any]) -> bool: ...


class WebhookAlertSink:
    """POST the alert as JSON; True once the receiver took it (2xx).

    Up to ``tries`` calls, retried only when another call may succeed: a connection error
    or timeout, a 5xx, or a 429. A receiver's ``Retry-After`` (seconds or an HTTP date) is
    honoured up to ``max_retry_after`` seconds; a longer one ends this round (the monitor
    calls again at the version's next window, so the loop is never held for long).
    Otherwise the waits double from ``backoff`` seconds. Any other answer (a 4xx: the
    receiver refused this body) is final. No wait follows the last try.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        tries: int = 3,
        *,
        backoff: float = 0.5,
        max_retry_after: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client, self.url, self.tries = client, url, tries
        self.backoff, self.max_retry_after, self.sleep = backoff, max_retry_after, sleep

    async def send(self, payload: dict[str, Any]) -> bool:
        body = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
        for attempt in range(self.tries):
            wait = self.backoff * 2**attempt
            try:
                response = await self.client.post(
                    self.url, content=body, headers={"content-type": "application/json"}
                )
            except httpx.TransportError as exc:
                log.warning("alert webhook call %d failed: %r", attempt + 1, exc)
            else:
                if response.is_success:
                    return True
                status = response.status_code
                if status != 429 and status < 500:
                    log.warning("alert webhook refused the alert (%s); not retried", status)
                    return False
                log.warning("alert webhook answered %s (call %d)", status, attempt + 1)
                asked = retry_after(response.headers.get("retry-after"), time.time())
                if asked is not None:
                    if asked > self.max_retry_after:
                        log.warning("alert webhook asks to wait %.0f s; next window", asked)
                        return False
                    wait = asked
            if attempt + 1 < self.tries:
                await self.sleep(wait)
        return False


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (RFC 9110: delta-seconds or an HTTP
    date, never negative); None when absent or unreadable.

    >>> retry_after("7", 0.0), retry_after(None, 0.0), retry_after("soon", 0.0)
    (7.0, None, None)
    >>> retry_after("Thu, 01 Jan 1970 00:00:30 GMT", 10.0)  # 30 s after the epoch, now 10
    20.0
    >>> retry_after("Thu, 01 Jan 1970 00:00:05 GMT", 10.0)  # already past
    0.0
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(when.timestamp() - now, 0.0)
