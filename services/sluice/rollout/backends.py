"""The controller's outside world, one Protocol per role, and the Redis / HTTP
implementations (the Kubernetes ones are in ``kube.py``).

- :class:`RolloutSource`: where ModelRollouts are declared and their status is kept.
- :class:`Leader`: the lease that lets one replica act at a time.
- :class:`Evidence`: traffic tallies, the drift monitor, prometheus and web providers.

The routing table is ``sluice.core.routes`` (the same store and writer as the router's
admin API).

Redis keys of the local source (the ``{rollout}`` hash tag keeps them on one shard):

=======================================  ==========================================
``sluice:rollout:{rollout}:specs``       hash name -> the resource (metadata + spec)
``sluice:rollout:{rollout}:status``      hash name -> status JSON
``sluice:rollout:{rollout}:events:<n>``  list of the newest events of rollout n
``sluice:rollout:{rollout}:lease``       the leader's token (``sluice.core.lease``)
=======================================  ==========================================
"""

from __future__ import annotations

import builtins
import time
from typing import Any, Protocol

import httpx
import orjson
import redis.asyncio as aioredis

from sluice.core.lease import RedisLease
from sluice.core.tally import Counts, read_window
from sluice.rollout.evidence import json_path, number
from sluice.rollout.resource import Rollout, Status

SPECS = "sluice:rollout:{rollout}:specs"
STATUS = "sluice:rollout:{rollout}:status"
LEASE = "sluice:rollout:{rollout}:lease"
EVENTS_KEPT = 50


def events_key(name: str) -> str:
    return f"sluice:rollout:{{rollout}}:events:{name}"


class RolloutSource(Protocol):
    async def list(self) -> builtins.list[Rollout]: ...

    async def save_status(self, rollout: Rollout, status: Status) -> None: ...

    async def event(self, rollout: Rollout, kind: str, reason: str, message: str) -> None: ...


class Leader(Protocol):
    async def acquire(self) -> bool:
        """Take or keep the lease; True while this replica holds it."""
        ...

    async def release(self) -> None: ...


class Evidence(Protocol):
    async def tallies(self, model: str, start: float, end: float) -> dict[str, Counts]: ...

    async def drift(self, model: str, candidate: str, stable: str) -> dict[str, Any]: ...

    async def prometheus(self, address: str, query: str) -> float | None: ...

    async def web(
        self, url: str, path: str, headers: dict[str, str], timeout: float
    ) -> float | None: ...


# KEYS: specs, statuses. ARGV: name, status JSON.
SAVE_IF_DECLARED = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
"""


class RedisRolloutSource:
    """ModelRollouts kept in Redis: what ``sluice rollout apply`` and the admin API write."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    async def list(self) -> list[Rollout]:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hgetall(SPECS)
            pipe.hgetall(STATUS)
            specs, statuses = await pipe.execute()
        out = []
        for key, raw in sorted(specs.items()):
            doc = orjson.loads(raw)
            status = statuses.get(key)
            if status is not None:
                doc["status"] = Status.model_validate_json(status)
            out.append(Rollout.model_validate(doc))
        return out

    async def get(self, name: str) -> Rollout | None:
        found = [r for r in await self.list() if r.name == name]
        return found[0] if found else None

    async def put(self, rollout: Rollout) -> Rollout:
        """Store the declared part (a new generation when the spec changed)."""
        current = await self.get(rollout.name)
        generation = 1
        if current is not None:
            same = current.spec == rollout.spec
            generation = current.generation if same else current.generation + 1
        stored = rollout.model_copy(update={"generation": generation, "status": Status()})
        body = stored.model_dump_json(exclude={"status"})
        async with self.client.pipeline(transaction=True) as pipe:
            if current is None:  # a new rollout starts afresh, whatever a late save left
                pipe.hdel(STATUS, rollout.name)
                pipe.delete(events_key(rollout.name))
            pipe.hset(SPECS, rollout.name, body)
            await pipe.execute()
        return stored.model_copy(update={"status": current.status if current else Status()})

    async def annotate(self, name: str, key: str, value: str) -> None:
        raw = await self.client.hget(SPECS, name)
        if raw is None:
            return
        doc = orjson.loads(raw)
        doc.setdefault("annotations", {})[key] = value
        await self.client.hset(SPECS, name, orjson.dumps(doc))

    async def delete(self, name: str) -> bool:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hdel(SPECS, name)
            pipe.hdel(STATUS, name)
            pipe.delete(events_key(name))
            removed, _, _ = await pipe.execute()
        return bool(removed)

    async def save_status(self, rollout: Rollout, status: Status) -> None:
        """Store the status, unless the rollout was deleted meanwhile (a reconcile that
        read it before the delete must not bring its status back for a later namesake)."""
        await self.client.eval(SAVE_IF_DECLARED, 2, SPECS, STATUS, rollout.name,
                               status.model_dump_json())  # fmt: skip

    async def event(self, rollout: Rollout, kind: str, reason: str, message: str) -> None:
        key = events_key(rollout.name)
        entry = {"at": time.time(), "type": kind, "reason": reason, "message": message}
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.lpush(key, orjson.dumps(entry))
            pipe.ltrim(key, 0, EVENTS_KEPT - 1)
            await pipe.execute()

    async def events(self, name: str) -> builtins.list[dict[str, Any]]:
        return [orjson.loads(e) for e in await self.client.lrange(events_key(name), 0, -1)]


class RedisLeader:
    """The leader's lease as a Redis key (``sluice.core.lease``)."""

    def __init__(self, client: aioredis.Redis, identity: str, ttl: float) -> None:
        self.lease = RedisLease(client)
        self.identity = identity
        self.ttl = ttl
        self.held = False

    async def acquire(self) -> bool:
        if self.held:
            self.held = await self.lease.renew(LEASE, self.identity, self.ttl)
        if not self.held:
            self.held = await self.lease.acquire(LEASE, self.identity, self.ttl)
        return self.held

    async def release(self) -> None:
        if self.held:
            await self.lease.release(LEASE, self.identity)
            self.held = False


class LiveEvidence:
    """Tallies from Redis; the drift monitor, Prometheus and web providers over HTTP."""

    def __init__(
        self, client: aioredis.Redis, http: httpx.AsyncClient, drift_monitor_url: str | None
    ) -> None:
        self.client = client
        self.http = http
        self.drift_url = drift_monitor_url

    async def tallies(self, model: str, start: float, end: float) -> dict[str, Counts]:
        return await read_window(self.client, model, start, end)

    async def drift(self, model: str, candidate: str, stable: str) -> dict[str, Any]:
        if self.drift_url is None:
            raise ProviderError("no drift monitor configured (SLUICE_ROLLOUT_DRIFT_MONITOR_URL)")
        url = f"{self.drift_url}/v1/analysis/{model}"
        answer = await self._get(url, {"candidate": candidate, "stable": stable}, {}, None)
        if not isinstance(answer, dict):
            raise ProviderError(f"the drift monitor answered {type(answer).__name__}, not JSON")
        return answer

    async def prometheus(self, address: str, query: str) -> float | None:
        url = address.rstrip("/") + "/api/v1/query"
        answer = await self._get(url, {"query": query}, {}, None)
        data = json_path(answer, "$.data") or {}
        result = data.get("result") if isinstance(data, dict) else None
        if data.get("resultType") == "scalar":
            return number((result or [None, None])[1])
        if not result:
            return None  # an empty result is "no data": inconclusive, never a failure
        return number(json_path(result, "$[0].value[1]"))

    async def web(
        self, url: str, path: str, headers: dict[str, str], timeout: float
    ) -> float | None:
        return number(json_path(await self._get(url, None, headers, timeout), path))

    async def _get(
        self,
        url: str,
        params: dict[str, str] | None,
        headers: dict[str, str],
        timeout: float | None,
    ) -> Any:
        try:
            kwargs: dict[str, Any] = {"params": params, "headers": headers}
            if timeout is not None:
                kwargs["timeout"] = timeout
            response = await self.http.get(url, **kwargs)
        except httpx.HTTPError as exc:
            raise ProviderError(f"{url}: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 400:
            raise ProviderError(f"{url} answered {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise ProviderError(f"{url} did not answer JSON") from None


class ProviderError(Exception):
    """A provider could not be asked or did not answer usably: the metric is inconclusive."""
