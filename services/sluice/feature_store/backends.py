"""The online store: a Protocol, and its Redis / Redis Cluster implementation.

``RedisOnlineStore`` is the read module other services import in process (the router):
it has no web-framework imports. One ``get_online`` is one Redis round trip (one MGET; on a
cluster, one pipeline per shard holding any of the keys, sent concurrently), whatever the
number of entities and views. Writes go through a Lua script so an older row never
overwrites a newer one, atomically, and every write refreshes the key's TTL
(``keys.key_ttl_ms``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.exceptions as rx
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from sluice.core.redisclient import HiredisPackingConnection
from sluice.feature_store import keys
from sluice.feature_store.codec import encode
from sluice.feature_store.definitions import FeatureView
from sluice.feature_store.errors import OnlineStoreUnavailable
from sluice.feature_store.retrieval import OnlineResult, Selection, assemble, plan_read, select

log = logging.getLogger(__name__)
T = TypeVar("T")

Row = tuple[str | int, int, Sequence[Any]]
"""(entity value, event timestamp in Unix microseconds, values in the view's feature order)."""

# KEYS[1]: the entity key. ARGV[1]: packed value, ARGV[2]: key TTL in ms. A row lands only
# when it is strictly newer than what is stored (same layout version); either way the TTL
# is refreshed. Returns 1 when written, 0 when the stored value was as new or newer.
NEWER_WINS = """
local old = redis.call('GET', KEYS[1])
if old and string.byte(old, 1) == string.byte(ARGV[1], 1)
   and struct.unpack('>i8', old, 2) >= struct.unpack('>i8', ARGV[1], 2) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
# KEYS: freshness hash[, row-counter hash]. ARGV: view, newest event us, rows.
BOOKKEEP = """
local old = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '')
if not old or tonumber(ARGV[2]) > old then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
if KEYS[2] then redis.call('HINCRBY', KEYS[2], ARGV[1], ARGV[3]) end
return 1
"""
_UNAVAILABLE = (
    rx.ConnectionError,  # includes BusyLoadingError (Redis is loading its data)
    rx.TimeoutError,
    rx.ClusterError,  # includes ClusterDownError, MasterDownError
    rx.RedisClusterException,
    rx.ReadOnlyError,
    rx.TryAgainError,
    rx.OutOfMemoryError,
    OSError,
)


@dataclass(frozen=True)
class Catalog:
    """A snapshot of the registry: the views and what is known about their data."""

    views: dict[str, FeatureView] = field(default_factory=dict)
    watermarks: dict[str, float] = field(default_factory=dict)
    """``view`` or ``view|i/N`` -> materialised up to (Unix seconds)."""
    freshness_us: dict[str, int] = field(default_factory=dict)
    """view -> newest event timestamp written (Unix microseconds)."""
    materialized_rows: dict[str, int] = field(default_factory=dict)
    """view -> rows materialisation sent to Redis, all runs."""
    loaded: bool = False


@dataclass(frozen=True)
class WriteResult:
    written: int
    """Rows stored (strictly newer than what was there)."""
    skipped: int
    """Rows not stored because the stored value was as new or newer (its TTL was refreshed)."""


class OnlineStore(Protocol):
    """Where online feature values live; the service and the router read through this."""

    @property
    def catalog(self) -> Catalog: ...

    async def refresh(self) -> Catalog: ...

    async def get_online(
        self, refs: Sequence[Any], entities: Mapping[str, Any], *, max_entities: int = 1000
    ) -> OnlineResult: ...

    async def write(self, view: FeatureView, rows: Sequence[Row], *, kind: str) -> WriteResult: ...

    async def ping(self) -> None: ...

    async def aclose(self) -> None: ...


def redact(url: str) -> str:
    """The URL without its password, for messages and logs.

    >>> redact("redis://:s3cret@cache:6379/0")
    'redis://:***@cache:6379/0'
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (
        f":{parts.port}" if parts.port else ""
    )
    return urlunsplit(parts._replace(netloc=netloc))


def connect(
    url: str, *, cluster: bool = False, timeout: float = 1.0, command_timeout: bool = True
) -> Redis | RedisCluster:
    """A client that fails fast (one immediate retry) so callers can answer 503 quickly.

    ``command_timeout=False`` leaves commands unbounded, for a caller that bounds every call
    itself (``asyncio.timeout``): redis-py then sends a command without a task of its own
    (about 8% of a looked-up request's CPU in the router).
    """
    options: dict[str, Any] = {
        "socket_timeout": timeout if command_timeout else None,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), retries=1),
    }
    if cluster:
        return RedisCluster.from_url(url, **options)
    return Redis.from_url(url, connection_class=HiredisPackingConnection, **options)


class RedisOnlineStore:
    """The online store on Redis or Redis Cluster; see the module docstring."""

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        url: str = "redis",
        batch_size: int = 500,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._cluster = isinstance(client, RedisCluster)
        self._where = redact(url)
        self._down = False
        self._misread = False
        self._batch = batch_size
        self._clock = clock
        self._catalog = Catalog()
        self._sha: str | None = None
        self._selections: dict[tuple[str, ...], tuple[dict[str, FeatureView], Selection]] = {}

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        cluster: bool = False,
        timeout: float = 1.0,
        command_timeout: bool = True,
        **kwargs: Any,
    ) -> RedisOnlineStore:
        client = connect(url, cluster=cluster, timeout=timeout, command_timeout=command_timeout)
        return cls(client, url=url, **kwargs)

    @property
    def client(self) -> Redis | RedisCluster:
        return self._client

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    async def get_online(
        self, refs: Sequence[Any], entities: Mapping[str, Any], *, max_entities: int = 1000
    ) -> OnlineResult:
        """Feature values of ``entities`` (``{join_key: [values]}``), one round trip."""
        if not self._catalog.loaded:
            await self.refresh()
        views = self._catalog.views
        plan = plan_read(self._select(refs, views), entities, views, max_entities=max_entities)
        if self._cluster:
            raw = await self._call(self._client.mget_nonatomic(plan.keys))  # type: ignore[union-attr]
        else:
            raw = await self._call(self._client.mget(plan.keys))
        return assemble(plan, raw, int(self._clock() * 1_000_000))

    def _select(self, refs: Sequence[Any], views: dict[str, FeatureView]) -> Selection:
        """``select`` with a small cache: callers repeat the same refs (the router does)."""
        if not isinstance(refs, list | tuple) or not all(type(r) is str for r in refs):
            return select(refs, views)
        key = tuple(refs)
        cached = self._selections.get(key)
        if cached is None or cached[0] is not views:
            if len(self._selections) >= 256:
                self._selections.clear()
            cached = self._selections[key] = (views, select(refs, views))
        return cached[1]

    async def refresh(self) -> Catalog:
        """Reload the registry (views, watermarks, freshness, counters) in one round trip."""
        pipe = self._client.pipeline(transaction=False)
        for key in keys.REGISTRY_KEYS:
            pipe.hgetall(key)
        views, marks, fresh, done = await self._call(pipe.execute())
        parsed: dict[str, FeatureView] = {}
        for name, raw in views.items():
            try:
                parsed[name.decode()] = FeatureView.from_json(raw)
            except ValueError:
                log.exception("skipping unreadable definition of view %s", name)
        self._catalog = Catalog(
            views=parsed,
            watermarks={k.decode(): float(v) for k, v in marks.items()},
            freshness_us={k.decode(): int(v) for k, v in fresh.items()},
            materialized_rows={k.decode(): int(v) for k, v in done.items()},
            loaded=True,
        )
        return self._catalog

    async def write(self, view: FeatureView, rows: Sequence[Row], *, kind: str) -> WriteResult:
        """Store rows with newer-wins; ``kind="materialize"`` also counts them in Redis.

        Rows must be validated already. Safe to repeat: a retried batch changes nothing.
        """
        if not rows:
            return WriteResult(0, 0)
        prefix = keys.key_prefix(view.name, view.schema_id)
        ttl_ms = keys.key_ttl_ms(view.ttl)
        written = 0
        for start in range(0, len(rows), self._batch):
            batch = rows[start : start + self._batch]
            args = [(keys.data_key(prefix, e), encode(ts, vals)) for e, ts, vals in batch]
            written += sum(await self._eval_each(args, ttl_ms))
        newest = max(ts for _, ts, _ in rows)
        counters = [keys.MATERIALIZED_KEY] if kind == "materialize" else []
        script_keys = [keys.FRESHNESS_KEY, *counters]
        await self._call(
            self._client.eval(
                BOOKKEEP, len(script_keys), *script_keys, view.name, newest, len(rows)
            )
        )
        return WriteResult(written, len(rows) - written)

    async def _eval_each(self, args: list[tuple[str, bytes]], ttl_ms: int) -> list[int]:
        """NEWER_WINS for each (key, value), pipelined; loads the script when Redis lost it."""
        for attempt in (1, 2):
            if self._sha is None:
                self._sha = await self._call(self._client.script_load(NEWER_WINS))
            pipe = self._client.pipeline(transaction=False)
            for key, value in args:
                pipe.execute_command("EVALSHA", self._sha, 1, key, value, ttl_ms)
            try:
                return [int(r) for r in await self._call(pipe.execute())]
            except rx.NoScriptError:  # Redis restarted or failed over: scripts are gone
                self._sha = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def save_views(
        self, upsert: Sequence[FeatureView], remove: Sequence[str], reset: Sequence[str]
    ) -> None:
        """Register views (as JSON), unregister others and forget watermark fields, atomically."""
        script = """
        local n = tonumber(ARGV[1]); local m = tonumber(ARGV[2])
        for i = 0, n - 1 do redis.call('HSET', KEYS[1], ARGV[3 + 2*i], ARGV[4 + 2*i]) end
        for i = 3 + 2*n, 2 + 2*n + m do redis.call('HDEL', KEYS[1], ARGV[i]) end
        for i = 3 + 2*n + m, #ARGV do redis.call('HDEL', KEYS[2], ARGV[i]) end
        return 1
        """
        argv: list[Any] = [len(upsert), len(remove)]
        for view in upsert:
            argv += [view.name, view.to_json()]
        argv += [*remove, *reset]
        await self._call(self._client.eval(script, 2, keys.VIEWS_KEY, keys.WATERMARKS_KEY, *argv))

    async def set_watermark(self, field_name: str, until: float) -> None:
        await self._call(self._client.hset(keys.WATERMARKS_KEY, field_name, repr(until)))

    async def ping(self) -> None:
        await self._call(self._client.ping())

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, pending: Awaitable[T]) -> T:
        """Await a Redis call; an unreachable Redis becomes OnlineStoreUnavailable (503)."""
        try:
            result = await pending
        except rx.MovedError as exc:  # a cluster node asked through the single-Redis client
            if not self._misread:  # once: every call would say it again
                self._misread = True
                log.error("Redis at %s is a Redis Cluster node (it answered MOVED): give the "
                          "online store's cluster setting (SLUICE_FEATURE_STORE_REDIS_CLUSTER, "
                          "SLUICE_ROUTER_FEATURE_REDIS_CLUSTER)", self._where)  # fmt: skip
            raise OnlineStoreUnavailable(
                "the online store is unavailable: its Redis is a cluster this service was "
                "not configured for"
            ) from exc
        except _UNAVAILABLE as exc:
            if not self._down:  # the address and the detail go to our log, once an outage
                self._down = True
                log.warning("Redis at %s did not answer: %s: %s", self._where,
                            type(exc).__name__, exc)  # fmt: skip
            raise OnlineStoreUnavailable(
                f"the online store is unavailable: Redis did not answer "
                f"({type(exc).__name__}); it is retried on every request"
            ) from exc
        if self._down:
            self._down = False
            log.warning("Redis at %s answers again", self._where)
        return result
