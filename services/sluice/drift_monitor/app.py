"""Build the drift monitor's ASGI app: the read loop in the background, the API, metrics.

The lifespan opens the Redis and HTTP clients, starts the read loop and the gauge
refresher, and stops them (releasing this replica's leases) on shutdown. Tests pass
fakes of the interfaces and leave the loop off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from sluice import __version__
from sluice.core.auth import FEEDBACK_TOKEN, writer_role
from sluice.core.handlers import install_error_handlers
from sluice.core.health import Check, health_routes, ping_check
from sluice.core.http import HttpMetrics, RequestMiddleware
from sluice.core.metrics import metrics_endpoint
from sluice.core.openapi import OPS_PATHS, install_openapi
from sluice.core.redisclient import connect, connect_cluster
from sluice.core.registry import ModelRegistry
from sluice.drift_monitor.api import add_routes
from sluice.drift_monitor.backends import (
    AlertSink,
    PredictionLog,
    RedisPredictionLog,
    RedisStateStore,
    StateStore,
    WebhookAlertSink,
)
from sluice.drift_monitor.feedback import FeedbackStore, RedisFeedbackStore
from sluice.drift_monitor.metrics import Metrics
from sluice.drift_monitor.monitor import Monitor
from sluice.drift_monitor.references import RegistryReferences
from sluice.drift_monitor.service import DriftService
from sluice.drift_monitor.settings import Settings

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    state: StateStore | None = None,
    feedback: FeedbackStore | None = None,
    prediction_log: PredictionLog | None = None,
    alerts: AlertSink | None = None,
    registry: CollectorRegistry | None = None,
    run_monitor: bool = True,
) -> FastAPI:
    """The app for ``settings``; with no backends given, real ones on ``settings.redis_url``."""
    client = None
    if state is None:
        client = (connect_cluster if settings.redis_cluster else connect)(settings.redis_url)
    http = httpx.AsyncClient(timeout=settings.alert_timeout_seconds)
    if client is not None:
        state = RedisStateStore(client)
        feedback = RedisFeedbackStore(
            client, settings.prediction_ttl_seconds, settings.performance_window
        )
        prediction_log = RedisPredictionLog(client, settings.group, settings.consumer)
    assert state is not None and feedback is not None and prediction_log is not None
    if alerts is None and settings.alert_webhook_url:
        alerts = WebhookAlertSink(http, settings.alert_webhook_url)
    registry = registry if registry is not None else CollectorRegistry()
    metrics = Metrics(registry)
    references = RegistryReferences(ModelRegistry(settings.registry))
    service = DriftService(
        state=state, feedback=feedback, prediction_log=prediction_log, references=references,
        metrics=metrics, window_seconds=settings.window_seconds,
        history_windows=settings.history_windows,
    )  # fmt: skip
    monitor = Monitor(
        settings, log_=prediction_log, state=state, feedback=feedback,
        references=references, metrics=metrics, alerts=alerts,
    )  # fmt: skip

    async def refresh(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await service.refresh_metrics()
            except Exception:
                log.exception("refreshing the drift gauges failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.discovery_seconds)

    async def monitoring() -> str | None:
        return monitor.failing

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(refresh(stop))]
        if run_monitor:
            tasks.append(asyncio.create_task(monitor.run(stop)))
        try:
            yield
        finally:
            stop.set()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(task, settings.block_ms / 1000 + 5)
            await http.aclose()
            if client is not None:
                await client.aclose()

    app = FastAPI(
        title="Sluice drift monitor", version=__version__, lifespan=lifespan,
        docs_url=None, redoc_url=None, openapi_url=None,
    )  # fmt: skip
    app.state.service = service
    app.state.monitor = monitor
    install_error_handlers(app)
    checks = [Check("monitor", monitoring)]
    if client is not None:
        checks.append(ping_check("redis", client))
    livez, readyz = health_routes(*checks)
    app.add_route("/livez", livez, methods=["GET"])
    app.add_route("/readyz", readyz, methods=["GET"])
    app.add_route("/metrics", metrics_endpoint(registry), methods=["GET"])
    add_routes(
        app,
        service,
        settings.max_feedback_items,
        feedback_role=writer_role(
            "feedback", FEEDBACK_TOKEN, settings.feedback_token, settings.admin_token
        ),
        max_body_bytes=settings.max_body_bytes,
    )
    install_openapi(app, OPS_PATHS)  # openapi_url=None: this one includes the plain routes
    app.add_middleware(RequestMiddleware, metrics=HttpMetrics(registry, "drift_monitor"))
    return app
