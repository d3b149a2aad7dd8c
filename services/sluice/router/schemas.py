"""What each routed version takes, read once per version and kept (versions are immutable)."""

from __future__ import annotations

import asyncio
import logging

from sluice.core.errors import Unavailable
from sluice.core.routes import Route
from sluice.router.backends import SchemaSource, UpstreamFailure
from sluice.router.enrich import VersionSchema

log = logging.getLogger(__name__)


class SchemaCache:
    """Version schemas by (model, version), fetched on first use from any of the version's
    replicas; concurrent first uses share one fetch."""

    def __init__(self, source: SchemaSource) -> None:
        self.source = source
        self._schemas: dict[tuple[str, str], VersionSchema] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def get(self, route: Route, version: str) -> VersionSchema:
        """The schema, or Unavailable (503) when no replica could say."""
        key = (route.model, version)
        found = self._schemas.get(key)
        if found is not None:
            return found
        async with self._locks.setdefault(key, asyncio.Lock()):
            found = self._schemas.get(key)
            if found is None:
                found = self._schemas[key] = await self._fetch(route, version)
        return found

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
