"""Prometheus helpers: a registry per app (never the global one) and the /metrics endpoint."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.requests import Request
from starlette.responses import Response

# Latency buckets in seconds, tuned for sub-millisecond to one-second calls.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0,
)  # fmt: skip


def metrics_endpoint(registry: CollectorRegistry):  # type: ignore[no-untyped-def]
    """An endpoint that renders ``registry`` in the Prometheus text format."""

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics
