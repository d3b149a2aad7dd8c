"""What each routed version takes, read once per version and kept (versions are immutable)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sluice.core.errors import Unavailable
from sluice.core.routes import Route
from sluice.router.backends import SchemaSource, UpstreamFailure
from sluice.router.enrich import VersionSchema

log = logging.getLogger(__name__)


class SchemaCache:
    """Version schemas by (model, version), fetched on first use from any of the version's
    replicas; concurrent first uses share one fetch.

    A schema whose feature refs are still pending (the feature store did not answer) is
    fetched again by one request every ``retry_seconds``; the others meanwhile use it as it
    is, without waiting."""

    def __init__(
        self,
        source: SchemaSource,
        retry_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._schemas: dict[tuple[str, str], VersionSchema] = {}
        self._retry_at: dict[tuple[str, str], float] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def get(self, route: Route, version: str) -> VersionSchema:
        """The schema, or Unavailable (503) when no replica could say."""
        key = (route.model, version)
        found = self._schemas.get(key)
        if found is not None and (not found.pending or self._clock() < self._retry_at[key]):
            return found
        lock = self._locks.setdefault(key, asyncio.Lock())
        if found is not None and lock.locked():
            return found  # another request is reading it again
        async with lock:
            again = self._schemas.get(key)
            if again is not None and again is not found:
                return again  # read meanwhile
            try:
                fresh = await self._fetch(route, version)
            except Unavailable:
                if found is None:
                    raise
                self._retry_at[key] = self._clock() + self.retry_seconds
                return found
            self._schemas[key] = fresh
            self._retry_at[key] = self._clock() + self.retry_seconds
            if found is not None and not fresh.pending:
                log.warning("the feature views' refs of %s %s are read", route.model, version)
        return fresh

    async def _fetch(self, route: Route, version: str) -> VersionSchema:
        """The schema from the first replica that gives it; the problems (with the
        addresses involved) go to the log, not to the client."""
        problems = []
        for url in route.upstreams[version].urls:
            try:
                return await self.source.schema(route.model, version, url)
            except (UpstreamFailure, ValueError, KeyError, OSError, Unavailable) as exc:
                problems.append(f"{type(exc).__name__}: {exc}")
        log.warning(
            "cannot read what version %s of %s takes: %s", version, route.model, "; ".join(problems)
        )
        raise Unavailable(
            f"cannot read what version {version!r} of {route.model!r} takes "
            "(the router's log has the detail)"
        )
