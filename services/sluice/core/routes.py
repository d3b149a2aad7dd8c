"""The routing table and its Redis store: the contract between the router (reader, and
writer through its admin API) and the rollout controller (writer during a rollout).

Pure part: plain values in, a validated :class:`Route` (or a :class:`TableError` naming
what is wrong) out. A router holds one immutable :class:`RoutingTable` snapshot and swaps
it whole, so a change takes effect between requests, never in the middle of one.

Modes, with ``stable`` the version that answers by default:

- no mode: every request goes to ``stable``.
- ``canary``: ``candidate`` answers the sticky buckets below ``weight`` percent; optionally
  ``mirror_percent`` of the traffic stable answers is also copied to the candidate.
- ``shadow``: ``stable`` answers; ``candidate`` gets a copy of ``mirror_percent`` (default
  all) of the requests and its answers are only compared.
- ``bluegreen``: ``stable`` is the active colour and takes all traffic; ``candidate`` is
  the preview, reachable only with the ``x-sluice-version`` header.

Storage (the ``{router}`` hash tag keeps the table on one Redis Cluster shard, so the Lua
scripts that change it are atomic):

=====================================  ==================================================
``sluice:router:{router}:routes``      hash model -> route JSON (without revision)
``sluice:router:{router}:revisions``   hash model -> revision (kept across deletes)
``sluice:router:{router}:meta``        hash: ``epoch``, a random id of this life of the
                                       table; ``floor``, every revision written is above
``sluice:router:changes``              pub/sub channel, message = the changed model
                                       (``*``: the table was re-seeded)
=====================================  ==================================================

Every change goes through :class:`RouteWriter` (validate in full, store as the next
revision if the caller's ``if_revision`` still holds, announce on pub/sub); a refused
change leaves the table as it was. Readers re-read on an announcement and periodically
(pub/sub is at-most-once).

The loss rule. The first change writes ``meta``; no change removes it: deleting routes,
even all of them, keeps it (and ``revisions``). So a table whose ``epoch`` is gone, or is
another than the one a reader saw before, did not change through the writer: Redis lost
it (restarted empty, flushed, failed over to an empty replica). For a router that is an
incident, not a change: it keeps serving the last table it knew, logs an ERROR, counts it
(``sluice_router_routing_table_lost_total``), shows it in ``/readyz`` and re-seeds the
store (:meth:`RedisRoutingStore.reseed`) with that table plus the declared routes
(``SLUICE_ROUTER_ROUTES``) it lacks. A model deleted after the table came back (its
revision is in the new ``revisions``) is not re-added. Data kept by a restart (AOF, RDB)
keeps ``meta``: nothing happens, unless the last writes were lost with it (an AOF fsynced
every second, a failover to a lagging replica). Revisions never go down through the
writer (a delete keeps the model's), so a table whose highest revision is below one a
reader saw, under the same ``epoch``, went back in time: that is a loss too, and the
re-seed (``restore``) also puts back each route the reader saw at a higher revision than
the stored one (a model deleted in those lost moments comes back: delete it again).

Revisions survive the loss: a re-seed sets ``floor`` to the highest revision the router
saw (deleted models' included) plus :data:`RESEED_GAP`, stores the re-seeded routes at
``floor`` and lifts any lower stored revision to it; every later change is above
``floor``. So revisions only grow across a loss, and an ``if_revision`` read before it
cannot match again unless ``RESEED_GAP`` changes were made, unseen by every router, in
the last moments before the loss (a router reads the table at least every refresh
period, 0.5 s by default; a change is a person or a controller tick). Only when every
router lost its memory together with Redis (both restarted) does a new table start again
at revision 1: the chart keeps Redis on a volume with AOF, so that takes two failures.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sluice.core.errors import Conflict, InvalidInput

log = logging.getLogger(__name__)

Mode = Literal["canary", "shadow", "bluegreen"]
MissingPolicy = Literal["reject", "default"]

# The registry's rule for model and version names (sluice.core.registry.NAME_PATTERN).
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


class TableError(ValueError):
    """A route the table refuses; the message says why. Nothing was changed."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Upstream(_Frozen):
    """Where one version is served."""

    urls: tuple[str, ...]
    """Base URLs of the version's model servers (replicas, or one Kubernetes Service)."""
    timeout_seconds: float | None = Field(default=None, gt=0, le=300)
    """Per-call timeout for this version; the router's default when unset."""


class Route(_Frozen):
    """One model's versions and the policy that splits its traffic between them."""

    model: str
    upstreams: dict[str, Upstream]
    stable: str
    candidate: str | None = None
    mode: Mode | None = None
    weight: int = Field(default=0, ge=0, le=100)
    """Canary: percent of traffic (sticky buckets) the candidate answers."""
    mirror_percent: int | None = Field(default=None, ge=0, le=100)
    """Percent of traffic copied to the candidate (shadow: default 100; canary: default 0)."""
    on_missing: MissingPolicy = "reject"
    """A feature missing or stale after lookup: refuse the request (422) or fill the
    training default; a lookup that failed: a 503, or every looked-up feature's default.
    Counted either way."""
    predlog_sample: float | None = Field(default=None, gt=0, le=1)
    """Share of answered requests written to the prediction log while the route has no
    candidate; None: the router's ``predlog_sample`` setting. With a candidate (canary,
    blue/green, shadow) every request is written: analyses compare the versions on them."""
    revision: int = 0
    """Set by the store: increases by one with every accepted change."""
    updated_at: float = 0.0
    """Unix seconds of the last accepted change (set by the store)."""

    @property
    def mirror(self) -> int:
        """The effective mirror percent.

        >>> Route(model="m", upstreams={}, stable="a", mode="shadow").mirror
        100
        """
        if self.mirror_percent is not None:
            return self.mirror_percent
        return 100 if self.mode == "shadow" else 0

    def weights(self) -> dict[str, float]:
        """Share of answered traffic per version (0..1): what the weight gauges show.

        >>> r = Route(model="m", upstreams={}, stable="a", candidate="b", mode="canary", weight=30)
        >>> r.weights()
        {'a': 0.7, 'b': 0.3}
        """
        shares = dict.fromkeys(self.upstreams, 0.0)
        share = self.weight / 100 if self.mode == "canary" and self.candidate else 0.0
        shares[self.stable] = round(1.0 - share, 6)
        if self.candidate:
            shares[self.candidate] = share
        return shares


def parse_route(model: str, data: Mapping[str, Any]) -> Route:
    """A validated route from JSON-like ``data`` (the admin API's body, a settings entry).

    >>> parse_route("churn", {"upstreams": {"v1": {"urls": ["http://a:8000"]}}, "stable": "v1"})
    Route(model='churn', upstreams={'v1': Upstream(urls=('http://a:8000',), ...
    """
    body = {k: v for k, v in data.items() if k not in ("revision", "updated_at")}
    body["model"] = model
    ups = body.get("upstreams")
    if isinstance(ups, Mapping):
        body["upstreams"] = {v: _upstream(u) for v, u in ups.items()}
    try:
        route = Route.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'route'}: {err['msg']}"
            for err in exc.errors()
        )
        raise TableError(f"route for {model!r} is not valid: {problems}") from None
    return check_route(route)


def _upstream(value: Any) -> Any:
    """Accept a bare URL or a list of URLs as shorthand for ``{"urls": [...]}``."""
    if isinstance(value, str):
        return {"urls": [value]}
    if isinstance(value, list):
        return {"urls": value}
    return value


def check_route(route: Route) -> Route:
    """Refuse a route that could not be served as written; return it normalised."""
    name = route.model
    if not NAME.fullmatch(name):
        raise TableError(f"model name {name!r} is not allowed (1-63 of a-z 0-9 . _ -)")
    if not route.upstreams:
        raise TableError(f"route for {name!r} has no upstreams")
    clean: dict[str, Upstream] = {}
    for version, up in route.upstreams.items():
        if not NAME.fullmatch(version):
            raise TableError(f"version name {version!r} is not allowed (1-63 of a-z 0-9 . _ -)")
        if not up.urls:
            raise TableError(f"version {version!r} of {name!r} has no upstream URL")
        for url in up.urls:
            if not url.startswith(("http://", "https://")) or len(url) < 10:
                raise TableError(f"upstream of {version!r} is not an http(s) URL: {url!r}")
        clean[version] = up.model_copy(update={"urls": tuple(u.rstrip("/") for u in up.urls)})
    known = ", ".join(sorted(clean))
    if route.stable not in clean:
        raise TableError(f"stable version {route.stable!r} has no upstream (known: {known})")
    if route.candidate is not None:
        if route.candidate not in clean:
            raise TableError(
                f"candidate version {route.candidate!r} has no upstream (known: {known})"
            )
        if route.candidate == route.stable:
            raise TableError(f"candidate and stable are both {route.stable!r}")
        if route.mode is None:
            raise TableError("a candidate needs a mode: canary, shadow or bluegreen")
    elif route.mode is not None:
        raise TableError(f"mode {route.mode!r} needs a candidate version")
    if route.weight and route.mode != "canary":
        raise TableError(f"weight {route.weight} applies to canary mode only")
    if route.mirror_percent and route.mode not in ("canary", "shadow"):
        raise TableError("mirror_percent applies to canary and shadow modes only")
    return route.model_copy(update={"upstreams": clean})


def merge_upstreams(current: Route, seeded: Route) -> Route:
    """Add the versions ``seeded`` knows and ``current`` lacks; the policy is kept.

    What a router does at start-up with the routes from its settings (the chart's values):
    an operator's later changes win, new versions become reachable.
    """
    extra = {v: u for v, u in seeded.upstreams.items() if v not in current.upstreams}
    if not extra:
        return current
    return current.model_copy(update={"upstreams": {**current.upstreams, **extra}})


class RoutingTable:
    """An immutable snapshot of every model's route."""

    __slots__ = ("routes",)

    def __init__(self, routes: Mapping[str, Route] | None = None) -> None:
        self.routes: Mapping[str, Route] = dict(routes or {})

    def get(self, model: str) -> Route | None:
        return self.routes.get(model)

    def replace(self, route: Route) -> RoutingTable:
        return RoutingTable({**self.routes, route.model: route})

    def without(self, model: str) -> RoutingTable:
        return RoutingTable({m: r for m, r in self.routes.items() if m != model})


class RevisionConflict(Conflict):
    """The route changed since the caller read it (``if_revision`` did not match)."""

    code = "revision_conflict"


class InvalidRoute(InvalidInput):
    """A routing change the table refuses; the table is unchanged."""

    code = "invalid_route"


class Subscription(Protocol):
    async def wait(self, timeout: float) -> str | None:
        """The next changed model, or None when ``timeout`` passed without one."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Snapshot:
    """The whole stored table as one read saw it."""

    routes: dict[str, Route]
    epoch: str | None
    """The table's life id; None when the store has none (never written, or lost)."""
    highest: int
    """The highest revision stored, deleted models' included (0 when none)."""


class RoutingStore(Protocol):
    """The shared routing table."""

    async def load(self) -> dict[str, Route]: ...

    async def snapshot(self) -> Snapshot: ...

    async def reseed(
        self, routes: Mapping[str, Route], epoch: str | None, floor: int, *, restore: bool = False
    ) -> str | None:
        """Put back the ``routes`` the store lacks (and did not delete since) at revision
        ``floor`` and lift lower revisions to it, only while the stored epoch is still
        ``epoch`` (None: none stored, one is created). With ``restore`` (the table went back
        in time within its life), a route stored at a lower revision than the given one's
        is put back too. The table's epoch after it; None when the epoch was not ``epoch``
        (the table changed meanwhile: read it again)."""
        ...

    async def put(self, route: Route, if_revision: int | None = None) -> Route: ...

    async def delete(self, model: str, if_revision: int | None = None) -> int: ...

    async def seed(self, seeds: Mapping[str, Route]) -> None: ...

    def subscribe(self) -> Subscription: ...


class RouteWriter:
    """The one way a route changes: validate, store with ``if_revision``, announce.

    The router's admin API and the rollout controller both call it.
    """

    def __init__(self, store: RoutingStore) -> None:
        self.store = store

    async def put(
        self, model: str, body: Mapping[str, Any] | Route, if_revision: int | None = None
    ) -> Route:
        """Store ``body`` (JSON-like or a Route) as ``model``'s route; InvalidRoute when the
        table refuses it, RevisionConflict when ``if_revision`` no longer holds."""
        try:
            route = (
                check_route(body.model_copy(update={"model": model}))
                if isinstance(body, Route)
                else parse_route(model, body)
            )
        except TableError as exc:
            raise InvalidRoute(str(exc)) from None
        return await self.store.put(route, if_revision)

    async def delete(self, model: str, if_revision: int | None = None) -> int:
        return await self.store.delete(model, if_revision)


ROUTES = "sluice:router:{router}:routes"
REVISIONS = "sluice:router:{router}:revisions"
META = "sluice:router:{router}:meta"
CHANNEL = "sluice:router:changes"
RESEED_GAP = 1000
"""How far above the highest revision it saw a router re-seeds a lost table."""

# KEYS: routes, revisions, meta. ARGV: model, route JSON ("" deletes), expected revision
# ("" any), channel, an epoch for a table that has none. Returns {new revision, previous
# revision}; {-1, current} on a revision mismatch.
_PUT = """
local cur = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= cur then return {-1, cur} end
if redis.call('HEXISTS', KEYS[3], 'epoch') == 0 then
  redis.call('HSET', KEYS[3], 'epoch', ARGV[5])
end
local rev = math.max(cur, tonumber(redis.call('HGET', KEYS[3], 'floor') or '0')) + 1
redis.call('HSET', KEYS[2], ARGV[1], rev)
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], ARGV[1])
else redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('PUBLISH', ARGV[4], ARGV[1])
return {rev, cur}
"""

# KEYS: routes, revisions, meta. ARGV: expected epoch ("" none), an epoch for a table that
# has none, floor, channel, restore ("1": a route stored below the given revision is put
# back too), then (model, route JSON, revision) triples. Returns the table's epoch when
# done, "" when the epoch was not the expected one.
_RESEED = """
local epoch = redis.call('HGET', KEYS[3], 'epoch') or ''
if epoch ~= ARGV[1] then return '' end
if epoch == '' then
  epoch = ARGV[2]
  redis.call('HSET', KEYS[3], 'epoch', epoch)
end
local floor = math.max(tonumber(ARGV[3]), tonumber(redis.call('HGET', KEYS[3], 'floor') or '0'))
redis.call('HSET', KEYS[3], 'floor', floor)
for i = 6, #ARGV, 3 do
  local cur = redis.call('HGET', KEYS[2], ARGV[i])
  if not cur or (ARGV[5] == '1' and tonumber(cur) < tonumber(ARGV[i + 2])) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    redis.call('HSET', KEYS[2], ARGV[i], floor)
  end
end
local revs = redis.call('HGETALL', KEYS[2])
for i = 1, #revs, 2 do
  if tonumber(revs[i + 1]) < floor then redis.call('HSET', KEYS[2], revs[i], floor) end
end
redis.call('PUBLISH', ARGV[4], '*')
return epoch
"""


def new_epoch() -> str:
    """A random id for a new life of the table."""
    return secrets.token_hex(8)


class RedisRoutingStore:
    """The routing table in Redis: atomic revisioned changes, announced on pub/sub."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.redis = client
        self._put = client.register_script(_PUT)
        self._reseed = client.register_script(_RESEED)

    async def load(self) -> dict[str, Route]:
        return (await self.snapshot()).routes

    async def snapshot(self) -> Snapshot:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(ROUTES)
            pipe.hgetall(REVISIONS)
            pipe.hget(META, "epoch")
            raw, revisions, epoch = await pipe.execute()
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
        highest = max((int(v) for v in revisions.values()), default=0)
        return Snapshot(routes, epoch.decode() if epoch else None, highest)

    async def reseed(
        self, routes: Mapping[str, Route], epoch: str | None, floor: int, *, restore: bool = False
    ) -> str | None:
        args: list[str | int] = [epoch or "", new_epoch(), floor, CHANNEL, int(restore)]
        for model, route in routes.items():
            args += [model, route.model_dump_json(exclude={"revision"}), route.revision]
        done = await self._reseed(keys=[ROUTES, REVISIONS, META], args=args)
        text = done.decode() if isinstance(done, bytes) else str(done)
        return text or None

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
        rev, cur = await self._put(
            keys=[ROUTES, REVISIONS, META], args=[model, body, expected, CHANNEL, new_epoch()]
        )
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
