"""The feature store's ASGI app: routes, health, metrics; the lifespan owns the Redis client.

The app starts even when Redis is down: /livez answers, /readyz says why it is not ready,
requests get a 503 naming Redis, and everything recovers by itself when Redis returns
(every request and readiness check tries again; the registry is re-read in the background).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from sluice.core.handlers import install_error_handlers
from sluice.core.health import Check, health_routes
from sluice.core.http import HttpMetrics, RequestMiddleware
from sluice.core.metrics import metrics_endpoint
from sluice.core.openapi import OPS_PATHS, install_openapi
from sluice.feature_store.api import routes
from sluice.feature_store.backends import OnlineStore, RedisOnlineStore
from sluice.feature_store.errors import OnlineStoreUnavailable
from sluice.feature_store.feast import feast_router
from sluice.feature_store.metrics import Metrics
from sluice.feature_store.openapi import PATHS, SCHEMAS, SECURITY_SCHEMES
from sluice.feature_store.service import FeatureService
from sluice.feature_store.settings import Settings

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    store: OnlineStore | None = None,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The app; ``store`` defaults to Redis at ``settings.redis_url`` (closed on shutdown)."""
    owned = store is None
    online: OnlineStore = store or RedisOnlineStore.from_url(
        settings.redis_url,
        cluster=settings.redis_cluster,
        timeout=settings.redis_timeout_seconds,
        batch_size=settings.write_batch_size,
        clock=clock,
    )
    registry = registry if registry is not None else CollectorRegistry()
    metrics = Metrics(registry, lambda: online.catalog, clock)
    service = FeatureService(online, metrics, settings, clock)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await _refresh(service)
        task = asyncio.create_task(_refresh_forever(service, settings.registry_refresh_seconds))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if owned:
                await online.aclose()

    async def ready() -> str | None:
        """Redis answers PING (and the catalog is read); the reason names no address."""
        try:
            await online.ping()
            if not online.catalog.loaded:
                await online.refresh()
        except (OnlineStoreUnavailable, asyncio.CancelledError):  # cancelled: timed out
            metrics.redis_up.set(0)
            raise
        metrics.redis_up.set(1)
        return None

    app = FastAPI(
        title="Sluice feature store",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # core.openapi serves it, the plain routes included
    )
    install_error_handlers(app)
    app.add_middleware(RequestMiddleware, metrics=HttpMetrics(registry, "feature_store"))
    livez, readyz = health_routes(Check("redis", ready))
    app.add_route("/livez", livez, methods=["GET"])
    app.add_route("/readyz", readyz, methods=["GET"])
    app.add_route("/metrics", metrics_endpoint(registry), methods=["GET"])
    app.router.routes.extend(routes(service))
    app.include_router(feast_router(service))
    install_openapi(app, {**OPS_PATHS, **PATHS}, SCHEMAS, SECURITY_SCHEMES)
    app.state.service = service
    return app


async def _refresh(service: FeatureService) -> None:
    try:
        await service.store.refresh()
        service.metrics.redis_up.set(1)
    except OnlineStoreUnavailable as exc:
        service.metrics.redis_up.set(0)
        log.warning("cannot read the feature registry: %s", exc.message)


async def _refresh_forever(service: FeatureService, interval: float) -> None:
    """Re-read the registry every ``interval`` seconds; errors are logged, never fatal."""
    while True:
        await asyncio.sleep(interval)
        try:
            await _refresh(service)
        except Exception:
            log.exception("refreshing the feature registry failed")
