"""Keeps a router's routing table in step with Redis.

At start the routes from settings are seeded, then the table is read. After that the
table is read again whenever a change is announced on pub/sub, and at least every
``refresh`` seconds in case an announcement was missed (pub/sub is at-most-once). Each read
hands the whole table to ``apply``, which swaps it in between requests. When Redis is away
the last table is kept and served; the watcher retries until Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

from redis.exceptions import RedisError

from sluice.core.routes import Route, RoutingStore

log = logging.getLogger(__name__)


class TableWatcher:
    def __init__(
        self,
        store: RoutingStore,
        seeds: Mapping[str, Route],
        refresh: float,
        apply: Callable[[Mapping[str, Route]], None],
    ) -> None:
        self.store = store
        self.seeds = seeds
        self.refresh = refresh
        self.apply = apply
        self.loaded = False
        self._first = asyncio.Event()
        self._seeded = not seeds
        self._task: asyncio.Task[None] | None = None
        self._current: dict[str, Route] | None = None
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
        """Read the table now and apply it if it changed."""
        routes = await self.store.load()
        if routes != self._current:
            self._current = routes
            self.apply(routes)
        self.loaded = True
        self._first.set()

    async def wait_loaded(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the first read of the table; whether it came."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first.wait(), timeout)
        return self.loaded

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
