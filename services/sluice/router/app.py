"""Build the router's ASGI app: inference + metadata proxy, admin API, health, metrics.

``create_app`` wires the real backends (Redis, HTTP, the feature store's read module)
unless a test passes fakes of our own interfaces. The lifespan starts the routing-table
watcher, the shadow workers and the prediction-log writer, and stops them in order.

Inference POSTs skip FastAPI's middleware, exception and routing layers: the app is a
:class:`~sluice.core.http.ShortcutApp` whose shortcut is the plain ASGI
:class:`~sluice.router.api.InferenceEndpoint` (those layers cost about 100 us a request
here, as much as the router's own work).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from redis.asyncio.cluster import RedisCluster

from sluice import __version__
from sluice.core.handlers import install_error_handlers
from sluice.core.health import health_routes, ping_check
from sluice.core.http import HttpMetrics, RequestMiddleware, ShortcutApp
from sluice.core.metrics import metrics_endpoint
from sluice.core.openapi import OPS_PATHS, V2_PATHS, install_openapi, v1_paths
from sluice.core.redisclient import connect, connect_cluster
from sluice.core.registry import ModelRegistry
from sluice.core.routes import RedisRoutingStore, RoutingStore
from sluice.core.tally import RedisTallyWriter, Tally
from sluice.core.tokens import client_token
from sluice.router.admin import admin_router
from sluice.router.api import InferenceEndpoint, add_routes
from sluice.router.backends import (
    AiohttpUpstream,
    FeatureLookup,
    HttpFeatureLookup,
    MetadataSchemas,
    PredictionLog,
    SchemaSource,
    ShadowSamples,
    StoreFeatureLookup,
    UpstreamClient,
)
from sluice.router.calls import Upstreams
from sluice.router.compare import Tolerance
from sluice.router.http1 import Http1Upstream
from sluice.router.metrics import Metrics
from sluice.router.mirror import Mirror
from sluice.router.ratelimit import Limiter, LocalLimiter, SharedLimiter
from sluice.router.service import RouterService
from sluice.router.settings import Settings
from sluice.router.store import RedisPredictionLog, RedisRateBuckets, RedisShadowSamples

REDIS_TIMEOUTS = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}


def create_app(
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    store: RoutingStore | None = None,
    samples: ShadowSamples | None = None,
    predlog: PredictionLog | None = None,
    client: UpstreamClient | None = None,
    lookup: FeatureLookup | None = None,
    schemas: SchemaSource | None = None,
) -> FastAPI:
    """The router app for ``settings``; tests pass fakes for any backend."""
    registry = registry if registry is not None else CollectorRegistry()
    metrics = Metrics(registry)
    redis: aioredis.Redis | None = None
    if store is None or samples is None or predlog is None:
        redis = connect(settings.redis_url, **REDIS_TIMEOUTS)
    if store is None:
        assert redis is not None
        store = RedisRoutingStore(redis)
    if samples is None:
        assert redis is not None
        samples = RedisShadowSamples(redis, settings.shadow_keep)
    log_redis: aioredis.Redis | RedisCluster | None = None
    if predlog is None:
        assert redis is not None
        log_redis = redis
        if settings.predlog_redis_url and settings.predlog_redis_cluster:
            log_redis = connect_cluster(settings.predlog_redis_url, **REDIS_TIMEOUTS)
        elif settings.predlog_redis_url:
            log_redis = connect(settings.predlog_redis_url, **REDIS_TIMEOUTS)
        predlog = RedisPredictionLog(
            log_redis,
            maxlen=settings.predlog_maxlen,
            buffer=settings.predlog_buffer,
            batch=settings.predlog_batch,
            linger=settings.predlog_linger_seconds,
            streams=settings.predlog_streams,
            on_written=lambda model, n: metrics.child(metrics.predlog_records, model).inc(n),
            on_drop=lambda model, why, n: metrics.child(metrics.predlog_dropped, model, why).inc(n),
        )
    if client is None:
        kind = Http1Upstream if settings.upstream_client == "http1" else AiohttpUpstream
        client = kind(
            connections=settings.upstream_connections,
            connect_timeout=settings.connect_timeout_seconds,
            max_response_bytes=settings.max_response_bytes,
        )
    if lookup is None and settings.feature_lookup == "redis":
        lookup = StoreFeatureLookup.from_url(
            settings.feature_redis_url or settings.redis_url,
            timeout=settings.lookup_timeout_seconds,
            cluster=settings.feature_redis_cluster,
        )
    elif lookup is None and settings.feature_lookup == "http":
        assert settings.feature_store_url is not None
        lookup = HttpFeatureLookup(
            settings.feature_store_url,
            client,
            settings.lookup_timeout_seconds,
            client_token(settings.feature_read_token),
        )
    if schemas is None:
        models = ModelRegistry(settings.registry) if settings.registry else None
        schemas = MetadataSchemas(
            client,
            registry=models,
            lookup=lookup,
            timeout=settings.upstream_timeout_seconds,
            lookup_timeout=settings.lookup_timeout_seconds,
        )
    upstreams = Upstreams(
        client,
        metrics,
        timeout=settings.upstream_timeout_seconds,
        retries=settings.retries,
        breaker_failures=settings.breaker_failures,
        breaker_cooldown=settings.breaker_cooldown_seconds,
    )
    tally = Tally()
    mirror = Mirror(
        upstreams,
        metrics,
        samples,
        predlog,
        tally=tally,
        size=settings.shadow_queue_size,
        concurrency=settings.shadow_concurrency,
        batch_rows=settings.shadow_batch_rows,
        linger=settings.shadow_linger_seconds,
        values=Tolerance(settings.shadow_value_tolerance, settings.shadow_value_abs_tolerance),
    )
    limiter: Limiter | None = None
    if settings.rate_limit_rps > 0:
        burst = settings.rate_limit_burst or max(1, int(settings.rate_limit_rps))
        limiter = (
            SharedLimiter(
                RedisRateBuckets(redis),
                settings.rate_limit_rps,
                burst,
                timeout=settings.rate_limit_timeout_seconds,
                fallback=settings.rate_limit_fallback,
                clock=time.monotonic,
                on_degraded=lambda how: metrics.child(metrics.rate_limit_degraded, how).inc(),
            )
            if redis is not None
            else LocalLimiter(settings.rate_limit_rps, burst, time.monotonic)
        )
    checks = []
    if redis is not None and settings.ready_needs_redis:
        checks.append(ping_check("redis", redis))
    service = RouterService(
        settings,
        metrics,
        store=store,
        upstreams=upstreams,
        schemas=schemas,
        lookup=lookup,
        predlog=predlog,
        mirror=mirror,
        tally=tally,
        checks=checks,
        limiter=limiter,
    )
    writer = (
        RedisTallyWriter(
            redis,
            tally,
            interval=settings.tally_flush_seconds,
            retention=settings.tally_retention_seconds,
        )
        if redis is not None
        else None
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        if writer is not None:
            writer.start()
        try:
            yield
        finally:
            await service.stop()
            if writer is not None:
                await writer.close()
            if lookup is not None:
                await lookup.close()
            await client.close()
            if log_redis is not None and log_redis is not redis:
                await log_redis.aclose()
            if redis is not None:
                await redis.aclose()

    app = ShortcutApp(
        title="Sluice router",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # core.openapi serves it, the plain routes included
        # Our metrics are Prometheus; FastAPI's OpenTelemetry hooks cost ~10 us a request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    http = HttpMetrics(registry, "router")
    inference = app.shortcut = InferenceEndpoint(service, settings, metrics, http)
    app.state.service = service
    install_error_handlers(app)
    livez, readyz = health_routes(*service.readiness.checks, detail=service.table_detail)
    app.add_route("/livez", livez, methods=["GET"])
    app.add_route("/readyz", readyz, methods=["GET"])
    app.add_route("/metrics", metrics_endpoint(registry), methods=["GET"])
    add_routes(app, service, inference)
    app.include_router(
        admin_router(service, store, samples, settings.admin_token, settings.admin_max_body_bytes)
    )
    install_openapi(app, {**OPS_PATHS, **V2_PATHS, **v1_paths()})
    app.add_middleware(RequestMiddleware, metrics=http)
    return app
