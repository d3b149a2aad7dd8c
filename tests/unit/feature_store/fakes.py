"""In-process fakes of the feature store's own interfaces (no Redis)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sluice.feature_store.backends import Catalog, Row, WriteResult
from sluice.feature_store.codec import encode, event_micros
from sluice.feature_store.definitions import Entity, Feature, FeatureView, Source
from sluice.feature_store.errors import OnlineStoreUnavailable
from sluice.feature_store.keys import data_key, key_prefix
from sluice.feature_store.retrieval import OnlineResult, assemble, plan_read


def view(
    name: str = "profile",
    features: Sequence[tuple[str, str]] = (("age", "int64"), ("plan", "string")),
    *,
    ttl: int = 3600,
    join_key: str = "customer_id",
    dtype: str = "string",
    path: str = "/data/customers.parquet",
) -> FeatureView:
    return FeatureView(
        name=name,
        entity=Entity(join_key=join_key, dtype=dtype),  # type: ignore[arg-type]
        features=tuple(Feature(name=n, dtype=d) for n, d in features),  # type: ignore[arg-type]
        ttl=ttl,
        source=Source(path=path),
    )


class FakeOnlineStore:
    """The OnlineStore protocol on a dict, with the same newer-wins and TTL rules."""

    def __init__(self, views: Sequence[FeatureView], clock: Callable[[], float] = time.time):
        self.data: dict[str, bytes] = {}
        self.clock = clock
        self.down = False
        self.reads = 0
        self._catalog = Catalog(views={v.name: v for v in views}, loaded=True)

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    def _check(self) -> None:
        if self.down:
            raise OnlineStoreUnavailable("the online store is unavailable: Redis at fake is down")

    async def refresh(self) -> Catalog:
        self._check()
        return self._catalog

    async def get_online(
        self, refs: Sequence[Any], entities: Mapping[str, Any], *, max_entities: int = 1000
    ) -> OnlineResult:
        plan = plan_read(refs, entities, self._catalog.views, max_entities=max_entities)
        self._check()
        self.reads += 1
        return assemble(plan, [self.data.get(k) for k in plan.keys], int(self.clock() * 1e6))

    async def write(self, view: FeatureView, rows: Sequence[Row], *, kind: str) -> WriteResult:
        assert kind in ("push", "materialize")
        self._check()
        prefix = key_prefix(view.name, view.schema_id)
        written = 0
        for entity, event_us, values in rows:
            key = data_key(prefix, entity)
            old = self.data.get(key)
            if old is None or event_micros(old) < event_us:
                self.data[key] = encode(event_us, values)
                written += 1
        return WriteResult(written, len(rows) - written)

    async def ping(self) -> None:
        self._check()

    async def aclose(self) -> None:
        return None
