"""The feature store's metrics, on a registry that is passed in (never the global one).

Lookups and pushes are counted as they happen. Materialisation runs as a separate job, so
its row counts and each view's freshness are kept in Redis by the writers and exported
here from the registry snapshot (refreshed every few seconds) by a collector.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sluice.core.metrics import LATENCY_BUCKETS
from sluice.feature_store.backends import Catalog
from sluice.feature_store.retrieval import OnlineResult

ENTITY_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)


class Metrics:
    """Everything the feature store exports besides the per-route HTTP metrics."""

    def __init__(
        self,
        registry: CollectorRegistry,
        catalog: Callable[[], Catalog],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lookup_seconds = Histogram(
            "sluice_feature_store_lookup_duration_seconds",
            "Time to read online features for one request (Redis round trip and decoding).",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.results = Counter(
            "sluice_feature_store_lookup_results_total",
            "Feature values returned online, by view and status "
            "(PRESENT, NULL_VALUE, NOT_FOUND, OUTSIDE_MAX_AGE).",
            ["view", "status"],
            registry=registry,
        )
        self.entities = Histogram(
            "sluice_feature_store_lookup_entities",
            "Entities asked for in one online request.",
            buckets=ENTITY_BUCKETS,
            registry=registry,
        )
        self.pushed = Counter(
            "sluice_feature_store_push_rows_total",
            "Rows received by POST /v1/features/push, by view and result "
            "(written, or skipped because the stored value was as new or newer).",
            ["view", "result"],
            registry=registry,
        )
        self.redis_up = Gauge(
            "sluice_feature_store_redis_up",
            "1 when the last call to Redis succeeded, else 0.",
            registry=registry,
        )
        registry.register(_CatalogCollector(catalog, clock))

    def observe_lookup(self, result: OnlineResult, seconds: float) -> None:
        self.lookup_seconds.observe(seconds)
        self.entities.observe(len(result.entity_values))
        for view, counts in result.counts.items():
            for status, count in counts.items():
                self.results.labels(view, status).inc(count)

    def observe_push(self, view: str, written: int, skipped: int) -> None:
        self.pushed.labels(view, "written").inc(written)
        self.pushed.labels(view, "skipped").inc(skipped)


class _CatalogCollector(Collector):
    """Staleness, ttl and materialised rows per view, from the registry snapshot."""

    def __init__(self, catalog: Callable[[], Catalog], clock: Callable[[], float]) -> None:
        self._catalog = catalog
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        catalog = self._catalog()
        now = self._clock()
        staleness = GaugeMetricFamily(
            "sluice_feature_store_staleness_seconds",
            "Age of the freshest value written for a view (now minus its newest event "
            "timestamp); from the registry snapshot, refreshed every few seconds.",
            labels=["view"],
        )
        for view, newest_us in sorted(catalog.freshness_us.items()):
            if view in catalog.views:
                staleness.add_metric([view], max(0.0, now - newest_us / 1e6))
        ttl = GaugeMetricFamily(
            "sluice_feature_store_ttl_seconds",
            "A view's ttl: values older than this are OUTSIDE_MAX_AGE (staleness past it "
            "means every read of the view comes back stale).",
            labels=["view"],
        )
        for view, definition in sorted(catalog.views.items()):
            ttl.add_metric([view], float(definition.ttl))
        rows = CounterMetricFamily(
            "sluice_feature_store_materialized_rows",
            "Rows `sluice features materialize` sent to Redis (written or skipped as not "
            "newer), all runs; kept in Redis by the jobs.",
            labels=["view"],
        )
        for view, count in sorted(catalog.materialized_rows.items()):
            if view in catalog.views:
                rows.add_metric([view], float(count))
        yield staleness
        yield ttl
        yield rows

    def describe(self) -> Iterator[Metric]:
        return iter(())
