"""One request through the interfaces: online reads, pushes, the view list; with metrics."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sluice.core.errors import InvalidInput, PayloadTooLarge
from sluice.feature_store.backends import Catalog, OnlineStore, Row, WriteResult
from sluice.feature_store.codec import check_value
from sluice.feature_store.definitions import FeatureView
from sluice.feature_store.errors import OnlineStoreUnavailable, UnknownView
from sluice.feature_store.metrics import Metrics
from sluice.feature_store.retrieval import OnlineResult, check_entity
from sluice.feature_store.settings import Settings

TIMESTAMP = "event_timestamp"


class FeatureService:
    def __init__(
        self,
        store: OnlineStore,
        metrics: Metrics,
        settings: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.settings = settings
        self.clock = clock

    @property
    def catalog(self) -> Catalog:
        return self.store.catalog

    async def get_online(self, refs: Any, entities: Any) -> OnlineResult:
        start = time.perf_counter()
        try:
            result = await self.store.get_online(
                refs, entities, max_entities=self.settings.max_entities
            )
        except OnlineStoreUnavailable:
            self.metrics.redis_up.set(0)
            raise
        self.metrics.redis_up.set(1)
        self.metrics.observe_lookup(result, time.perf_counter() - start)
        return result

    async def push(self, body: Mapping[str, Any]) -> tuple[FeatureView, WriteResult]:
        """Validate every row first (a bad row stores nothing), then write with newer-wins."""
        name = body.get("view")
        if not isinstance(name, str):
            raise InvalidInput("view: name the feature view to push to")
        if not self.catalog.loaded:
            await self.store.refresh()
        view = self.catalog.views.get(name)
        if view is None:
            known = ", ".join(sorted(self.catalog.views)) or "none"
            raise UnknownView(f"feature view {name!r} is not registered (views: {known})")
        rows = body.get("rows")
        if not isinstance(rows, list) or not rows:
            raise InvalidInput("rows: list at least one row")
        if len(rows) > self.settings.max_push_rows:
            limit = self.settings.max_push_rows
            raise PayloadTooLarge(f"rows: {len(rows)} rows, over the limit of {limit}")
        latest_us = int((self.clock() + self.settings.push_max_future_seconds) * 1_000_000)
        parsed = [parse_push_row(view, row, f"rows[{i}]", latest_us) for i, row in enumerate(rows)]
        try:
            result = await self.store.write(view, parsed, kind="push")
        except OnlineStoreUnavailable:
            self.metrics.redis_up.set(0)
            raise
        self.metrics.redis_up.set(1)
        self.metrics.observe_push(view.name, result.written, result.skipped)
        return view, result


def parse_push_row(view: FeatureView, row: Any, where: str, latest_us: int) -> Row:
    """One pushed row as (entity, event us, values); InvalidInput naming the field if bad."""
    if not isinstance(row, Mapping):
        raise InvalidInput(
            f"{where}: expected an object with {view.entity.join_key}, features and {TIMESTAMP}"
        )
    join_key = view.entity.join_key
    allowed = {join_key, TIMESTAMP, *view.feature_index}
    extra = sorted(set(row) - allowed)
    if extra:
        raise InvalidInput(f"{where}: view {view.name!r} has no field {extra[0]!r}")
    if join_key not in row:
        raise InvalidInput(f"{where}.{join_key}: missing")
    entity = check_entity(row[join_key], view.entity.dtype, where=f"{where}.{join_key}")
    event_us = parse_timestamp(row.get(TIMESTAMP), f"{where}.{TIMESTAMP}")
    if event_us > latest_us:
        raise InvalidInput(f"{where}.{TIMESTAMP}: {row[TIMESTAMP]} is in the future")
    values = []
    for feature in view.features:
        if feature.name not in row:
            raise InvalidInput(
                f"{where}.{feature.name}: missing (a push replaces the whole view for the "
                "entity: send every feature, null for none)"
            )
        try:
            values.append(check_value(feature.dtype, row[feature.name]))
        except ValueError as exc:
            raise InvalidInput(f"{where}.{feature.name}: {exc}") from None
    return entity, event_us, values


def parse_timestamp(value: Any, where: str) -> int:
    """ISO-8601 text as Unix microseconds; no offset means UTC.

    >>> parse_timestamp("2024-05-01T12:00:00Z", "t"), parse_timestamp("1970-01-01 00:00:01", "t")
    (1714564800000000, 1000000)
    """
    if not isinstance(value, str):
        raise InvalidInput(f"{where}: expected an ISO-8601 string such as 2024-05-01T12:00:00Z")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{where}: {value!r} is not an ISO-8601 timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
