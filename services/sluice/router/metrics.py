"""The router's metrics, on a registry that is passed in.

``http_request_duration_seconds{status}`` is the gateway histogram Flagger and Argo Rollouts
read unchanged (success rate from its count by status, latency from its buckets). The
rest is per (model, version, role): role is ``primary`` (the user got this answer) or
``shadow`` (a mirrored copy), as in the prediction log.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sluice.core.metrics import LATENCY_BUCKETS

ABS_DIFF_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
DELTA_BUCKETS = (
    -0.1, -0.025, -0.01, -0.005, -0.0025, -0.001, -0.0005, -0.00025, 0.0, 0.00025, 0.0005,
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
)  # fmt: skip


class Metrics:
    """Every router metric; ``child`` caches label lookups for the hot path."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str, labels: list[str]) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        def gauge(name: str, doc: str, labels: list[str]) -> Gauge:
            return Gauge(name, doc, labels, registry=registry)

        self.gateway = Histogram(
            "http_request_duration_seconds",
            "Inference requests through the gateway, by HTTP status (for Flagger / Argo).",
            ["status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.requests = counter(
            "sluice_router_requests_total",
            "Upstream calls answered, by model, version and role (primary or shadow).",
            ["model", "version", "role"],
        )
        self.errors = counter(
            "sluice_router_upstream_errors_total",
            "Upstream calls that failed, by reason (connect, timeout, too_large, status, "
            "circuit_open).",
            ["model", "version", "role", "reason"],
        )
        self.latency = Histogram(
            "sluice_router_upstream_duration_seconds",
            "Time an upstream took to answer, by model, version and role.",
            ["model", "version", "role"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.fallbacks = counter(
            "sluice_router_fallbacks_total",
            "Requests answered by stable because the candidate failed or its breaker was open.",
            ["model", "version"],
        )
        self.weight = gauge(
            "sluice_router_traffic_weight_ratio",
            "Share of answered traffic each version gets under the current route (0..1).",
            ["model", "version"],
        )
        self.mirror = gauge(
            "sluice_router_mirror_ratio",
            "Share of traffic copied to the candidate (0..1).",
            ["model", "version"],
        )
        self.revision = gauge(
            "sluice_router_table_revision", "Revision of the route this router applies.", ["model"]
        )
        self.circuit_open = gauge(
            "sluice_router_circuit_open",
            "1 while a version's circuit breaker is open.",
            ["model", "version"],
        )
        pair = ["model", "stable", "candidate"]
        self.shadow_rows = counter(
            "sluice_router_shadow_rows_total",
            "Rows compared in shadow, by outcome (agree or disagree: the label, or a "
            "regressor's value within the tolerance).",
            [*pair, "outcome"],
        )
        self.shadow_errors = counter(
            "sluice_router_shadow_errors_total",
            "Mirrored calls the candidate failed (the user never saw them).",
            [*pair, "reason"],
        )
        self.shadow_agreement = gauge(
            "sluice_router_shadow_agreement_ratio",
            "Share of compared rows that agree, since this router started.",
            pair,
        )
        self.shadow_abs_diff = Histogram(
            "sluice_router_shadow_score_abs_diff",
            "|score_candidate - score_stable| per compared row (positive-class probability; "
            "a regressor's value).",
            pair,
            buckets=ABS_DIFF_BUCKETS,
            registry=registry,
        )
        self.shadow_latency_delta = Histogram(
            "sluice_router_shadow_latency_delta_seconds",
            "Candidate latency minus stable latency per mirrored request.",
            pair,
            buckets=DELTA_BUCKETS,
            registry=registry,
        )
        self.shadow_dropped = counter(
            "sluice_router_shadow_dropped_total",
            "Mirrored calls not sent, by reason (queue_full, circuit_open).",
            ["model", "reason"],
        )
        self.predlog_records = counter(
            "sluice_router_predlog_records_total", "Prediction-log records written.", ["model"]
        )
        self.predlog_dropped = counter(
            "sluice_router_predlog_dropped_total",
            "Prediction-log records dropped, by reason (buffer_full, redis_error).",
            ["model", "reason"],
        )
        self.predlog_sampled_out = counter(
            "sluice_router_predlog_sampled_out_total",
            "Answered requests not written to the prediction log by its sample rate.",
            ["model"],
        )
        self.feature_gaps = counter(
            "sluice_router_feature_gaps_total",
            "Feature values missing or stale after lookup, by status and action (default/reject).",
            ["model", "feature", "status", "action"],
        )
        self.lookup_duration = Histogram(
            "sluice_router_feature_lookup_duration_seconds",
            "Time one feature lookup took.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.lookup_errors = counter(
            "sluice_router_feature_lookup_errors_total", "Feature lookups that failed.", []
        )
        self.rate_limited = counter(
            "sluice_router_rate_limited_total", "Requests refused with 429.", []
        )
        self.rate_limit_degraded = counter(
            "sluice_router_rate_limit_degraded_total",
            "Requests whose shared (Redis) rate limit could not be checked, by what was done "
            "instead (local: this replica's own bucket, open: let through, closed: refused).",
            ["fallback"],
        )
        self.table_lost = counter(
            "sluice_router_routing_table_lost_total",
            "Times this router found the routing table lost in Redis (and re-seeded it).",
            [],
        )
        self.table_from_memory = gauge(
            "sluice_router_routing_table_from_memory",
            "1 while this router serves a routing table Redis lost and it has not re-seeded.",
            [],
        )
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._agree: dict[tuple[str, str, str], list[int]] = {}

    def child(self, metric: Counter | Gauge | Histogram, *labels: str) -> Any:
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def answered(self, model: str, version: str, role: str, seconds: float) -> None:
        self.child(self.requests, model, version, role).inc()
        self.child(self.latency, model, version, role).observe(seconds)

    def failed(self, model: str, version: str, role: str, reason: str) -> None:
        self.child(self.errors, model, version, role, reason).inc()

    def route(
        self,
        model: str,
        revision: int,
        weights: Mapping[str, float],
        mirror: Mapping[str, float],
    ) -> None:
        """Show a newly applied route."""
        self.revision.labels(model).set(revision)
        for version, share in weights.items():
            self.weight.labels(model, version).set(share)
            self.mirror.labels(model, version).set(mirror.get(version, 0.0))

    def forget(self, model: str, versions: Iterable[str], route: bool) -> None:
        """Drop the series of ``model``'s ``versions`` that left its route, and with
        ``route`` those of the route itself: a gauge must not show a route that no longer
        exists. Counters stay (a rate over them must not see a reset)."""
        for version in versions:
            for gauge in (self.weight, self.mirror, self.circuit_open):
                with contextlib.suppress(KeyError):
                    gauge.remove(model, version)
                self._children.pop((id(gauge), (model, version)), None)
        if route:
            with contextlib.suppress(KeyError):
                self.revision.remove(model)

    def compared(
        self,
        pair: tuple[str, str, str],
        agreed: int,
        rows: int,
        abs_diffs: tuple[float, ...],
        latency_delta: float,
    ) -> None:
        self.child(self.shadow_rows, *pair, "agree").inc(agreed)
        if rows > agreed:
            self.child(self.shadow_rows, *pair, "disagree").inc(rows - agreed)
        tally = self._agree.setdefault(pair, [0, 0])
        tally[0] += agreed
        tally[1] += rows
        self.child(self.shadow_agreement, *pair).set(tally[0] / tally[1] if tally[1] else 1.0)
        hist = self.child(self.shadow_abs_diff, *pair)
        for diff in abs_diffs:
            hist.observe(diff)
        self.child(self.shadow_latency_delta, *pair).observe(latency_delta)
