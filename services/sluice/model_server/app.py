"""Build the model server's ASGI app: one model version, V2 + V1 endpoints, health, metrics.

The model loads in the background once the server is up, so /livez answers at once and
/readyz (and /v2/health/ready) turn 200 only after the model loaded and one warm-up
inference ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from functools import partial

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from sluice import __version__
from sluice.core.handlers import install_error_handlers
from sluice.core.health import health_routes
from sluice.core.http import RequestMiddleware, ShortcutApp
from sluice.core.metrics import metrics_endpoint
from sluice.core.openapi import OPS_PATHS, V2_PATHS, install_openapi, v1_paths
from sluice.core.registry import ModelCard, ModelRegistry, Profile
from sluice.model_server.api import add_routes
from sluice.model_server.backends import OnnxRuntime, Runtime
from sluice.model_server.explanations import Explanations
from sluice.model_server.metrics import Metrics
from sluice.model_server.service import ModelService
from sluice.model_server.settings import Settings

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    card: ModelCard | None = None,
    load_runtime: Callable[[], Runtime] | None = None,
    registry: CollectorRegistry | None = None,
    profile: Profile | None = None,
) -> FastAPI:
    """The app for ``settings``; tests pass a card (and a profile, for ``:explain``), a
    fake runtime loader and a registry.

    Reads the card and profile now (an unknown model or version fails here, before
    serving), and the ONNX model in the background after start-up.
    """
    models = ModelRegistry(settings.registry)
    if card is None:
        card = models.card(settings.model, settings.version)
        profile = _profile(models, settings)
    if load_runtime is None:
        load_runtime = partial(
            OnnxRuntime,
            models.onnx_path(settings.model, settings.version),
            intra_op_threads=settings.intra_op_threads,
        )
    registry = registry if registry is not None else CollectorRegistry()
    metrics = Metrics(registry, card.model, card.version)
    service = ModelService(card, settings, metrics, load_runtime)
    explanations = Explanations(service, profile, settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(service.start())
        try:
            yield
        finally:
            loading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loading
            await service.close()
            explanations.close()

    app = ShortcutApp(
        title="Sluice model server",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # core.openapi serves it, the plain routes included
        # Our metrics are Prometheus; FastAPI's OpenTelemetry hooks cost ~10 us a request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.service = service
    install_error_handlers(app)
    add_routes(app, service, settings.max_body_bytes, metrics.http, explanations)  # first
    livez, readyz = health_routes(service.ready_reason)
    app.add_route("/livez", livez, methods=["GET"])
    app.add_route("/readyz", readyz, methods=["GET"])
    app.add_route("/metrics", metrics_endpoint(registry), methods=["GET"])
    install_openapi(app, {**OPS_PATHS, **V2_PATHS, **v1_paths()})
    app.add_middleware(RequestMiddleware, metrics=metrics.http)
    return app


def _profile(models: ModelRegistry, settings: Settings) -> Profile | None:
    """The version's profile, or None (``:explain`` then says it has no background)."""
    try:
        return models.profile(settings.model, settings.version)
    except (OSError, ValueError) as exc:
        log.warning("no profile to explain against: %s", exc)
        return None
