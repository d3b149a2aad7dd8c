"""Keeps a router's routing table in step with Redis, and puts it back when Redis lost it.

At start the routes from settings are seeded, then the table is read. After that the
table is read again whenever a change is announced on pub/sub, and at least every
``refresh`` seconds in case an announcement was missed (pub/sub is at-most-once). Each read
hands the whole table to ``apply``, which swaps it in between requests. When Redis is away
the last table is kept and served; the watcher retries until Redis is back.

A read that finds the table lost (the loss rule of ``sluice.core.routes``: its epoch gone
or another than the one seen before, or its highest revision below one seen before) is
never applied. The router keeps serving the last table it knew, logs an ERROR, calls
``on_lost`` and re-seeds the store with that table plus the declared routes it lacks,
above every revision it saw (``on_lost(True)`` once that went through); then it reads
again. A table gone back in time (same epoch) also gets back the routes this router read
at a higher revision than the stored one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from redis.exceptions import RedisError

from sluice.core.routes import RESEED_GAP, Route, RoutingStore, Snapshot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loss:
    """The last time this router found the routing table lost in Redis."""

    at: float
    """Unix seconds when it was found."""
    routes: int
    """Routes this router re-seeded from memory and settings."""
    floor: int
    """The revision the re-seeded routes got (every later one is higher)."""
    reseeded: bool
    """Whether the re-seed went through (False: still serving from memory only)."""


class TableWatcher:
    def __init__(
        self,
        store: RoutingStore,
        seeds: Mapping[str, Route],
        refresh: float,
        apply: Callable[[Mapping[str, Route]], None],
        on_lost: Callable[[bool], None] = lambda _: None,
    ) -> None:
        self.store = store
        self.seeds = seeds
        self.refresh = refresh
        self.apply = apply
        self.on_lost = on_lost
        self.loaded = False
        self.loss: Loss | None = None
        self._first = asyncio.Event()
        self._seeded = not seeds
        self._task: asyncio.Task[None] | None = None
        self._current: dict[str, Route] | None = None
        self._epoch: str | None = None
        self._highest = 0
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="routing-table")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            while not self._task.done():  # a cancel can be lost in a racing wait (3.11)
                self._task.cancel()
                await asyncio.wait([self._task], timeout=1.0)

    async def reload(self) -> None:
        """Read the table now and apply it if it changed; re-seed it if it was lost."""
        for _ in range(5):
            snap = await self.store.snapshot()
            if not self._lost(snap):
                break
            await self._reseed(snap)
        else:
            raise RedisError("the routing table kept changing while it was re-seeded")
        self._epoch = snap.epoch
        self._highest = max(self._highest, snap.highest)
        if snap.routes != self._current:
            self._current = snap.routes
            self.apply(snap.routes)
        self.loaded = True
        self._first.set()

    async def wait_loaded(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the first read of the table; whether it came."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first.wait(), timeout)
        return self.loaded

    def _lost(self, snap: Snapshot) -> bool:
        """Whether ``snap`` is a table Redis lost rather than one changed by a writer."""
        if snap.epoch is None:
            # no table marker: lost if this router knew a table; a table written before
            # markers existed (routes, no epoch) is stamped by the re-seed, nothing added
            return self._epoch is not None or bool(snap.routes)
        if self._epoch is None:
            return False
        # another life of the table, or the same one gone back in time: revisions only
        # grow through the writer (deleted models keep theirs), so a lower highest one
        # means Redis lost its last writes (AOF fsync, failover to a lagging replica)
        return snap.epoch != self._epoch or snap.highest < self._highest

    def _why(self, snap: Snapshot) -> str:
        if snap.epoch is None:
            return "its marker is gone"
        if snap.epoch != self._epoch:
            return "it was re-created"
        return f"it went back from revision {self._highest} to {snap.highest}"

    async def _reseed(self, snap: Snapshot) -> None:
        if self._epoch is None:
            # a table from before epochs existed: stamp it, change nothing else
            self._epoch = await self.store.reseed({}, None, 0)
            return
        known = self._current or {}
        wanted = {**self.seeds, **known}  # the last known table wins over the settings
        floor = max(self._highest, snap.highest) + RESEED_GAP
        if self.loss is None or self.loss.reseeded:
            log.error(
                "the routing table was lost in Redis (%s); serving the last known table "
                "(%d routes) and re-seeding it above revision %d",
                self._why(snap),
                len(known),
                floor,
                extra={"routes": len(known), "revision": floor},
            )
            self.on_lost(False)
            self.loss = Loss(time.time(), len(wanted), floor, reseeded=False)
        # the same life gone back in time: the routes this router read later win
        restore = snap.epoch == self._epoch
        epoch = await self.store.reseed(wanted, snap.epoch, floor, restore=restore)
        if epoch is not None:
            self._epoch = epoch  # the table is back, with this router's routes in it
            self._highest = max(self._highest, floor)
            lost_at = self.loss.at if self.loss is not None else time.time()
            self.loss = Loss(lost_at, len(wanted), floor, reseeded=True)
            self.on_lost(True)
            log.warning(
                "re-seeded the lost routing table: %d routes at revision %d",
                len(wanted),
                floor,
                extra={"routes": len(wanted), "revision": floor},
            )

    async def _run(self) -> None:
        failing = False
        while not self._stopping:
            sub = self.store.subscribe()
            try:
                if not self._seeded:
                    await self.store.seed(self.seeds)
                    self._seeded = True
                await sub.wait(0)  # subscribe before reading: no change falls in between
                await self.reload()
                if failing:
                    log.info("routing table store is back")
                    failing = False
                while not self._stopping:
                    await sub.wait(self.refresh)
                    await self.reload()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if not failing:
                    log.warning("routing table store unavailable, serving the last table: %s", exc)
                failing = True
                await asyncio.sleep(self.refresh)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await sub.close()
