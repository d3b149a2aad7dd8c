"""Build the rollout controller's app: the reconcile loop in the lifespan, the admin API,
health and metrics. Tests pass fakes of our own interfaces for any backend."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from sluice import __version__
from sluice.core.handlers import install_error_handlers
from sluice.core.health import Check, health_routes, ping_check
from sluice.core.http import HttpMetrics, RequestMiddleware
from sluice.core.metrics import metrics_endpoint
from sluice.core.openapi import OPS_PATHS, install_openapi
from sluice.core.redisclient import connect
from sluice.core.routes import RedisRoutingStore, RoutingStore
from sluice.rollout.api import admin_router
from sluice.rollout.backends import (
    Evidence,
    Leader,
    LiveEvidence,
    RedisLeader,
    RedisRolloutSource,
    RolloutSource,
)
from sluice.rollout.metrics import Metrics
from sluice.rollout.service import RolloutController
from sluice.rollout.settings import Settings

REDIS_TIMEOUT = 2.0


def create_app(
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    source: RolloutSource | None = None,
    leader: Leader | None = None,
    routes: RoutingStore | None = None,
    evidence: Evidence | None = None,
) -> FastAPI:
    registry = registry if registry is not None else CollectorRegistry()
    metrics = Metrics(registry)
    redis = connect(
        settings.redis_url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
    )
    http = httpx.AsyncClient(timeout=settings.provider_timeout_seconds)
    if source is None or leader is None:
        if settings.source == "kubernetes":
            from sluice.rollout.kube import KubeLeader, KubeRolloutSource, api_client

            client = api_client(settings.kubeconfig)
            source = source or KubeRolloutSource(client, settings.namespace, settings.identity)
            leader = leader or KubeLeader(
                client, settings.namespace, settings.lease_name, settings.identity,
                settings.lease_seconds,
            )  # fmt: skip
        else:
            source = source or RedisRolloutSource(redis)
            leader = leader or RedisLeader(redis, settings.identity, settings.lease_seconds)
    controller = RolloutController(
        source=source,
        leader=leader,
        routes=routes or RedisRoutingStore(redis),
        evidence=evidence or LiveEvidence(redis, http, settings.drift_monitor_url),
        metrics=metrics,
        tick=settings.tick_seconds,
        settle=settings.settle_seconds,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        controller.start()
        try:
            yield
        finally:
            await controller.stop()
            await http.aclose()
            await redis.aclose()

    app = FastAPI(
        title="Sluice rollout controller",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # core.openapi serves it, the plain routes included
    )
    app.state.controller = controller
    install_error_handlers(app)
    livez, readyz = health_routes(
        Check("controller", controller.ready_reason), ping_check("redis", redis)
    )
    app.add_route("/livez", livez, methods=["GET"])
    app.add_route("/readyz", readyz, methods=["GET"])
    app.add_route("/metrics", metrics_endpoint(registry), methods=["GET"])
    app.include_router(admin_router(source, settings.admin_token, settings.admin_max_body_bytes))
    install_openapi(app, OPS_PATHS)
    app.add_middleware(RequestMiddleware, metrics=HttpMetrics(registry, "rollout"))
    return app
