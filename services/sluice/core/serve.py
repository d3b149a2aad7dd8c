"""Run an ASGI app under uvicorn the way every Sluice service does in production."""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI

from sluice.core.settings import ServiceSettings

log = logging.getLogger(__name__)


def run_app(app: FastAPI, settings: ServiceSettings) -> None:
    """Serve ``app`` on one worker with httptools on the configured event loop, no access
    log, graceful stop.

    uvicorn stops accepting on SIGTERM and waits up to ``graceful_shutdown_seconds`` for
    in-flight requests before it exits.
    """
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop=settings.event_loop,
        http="httptools",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=int(settings.graceful_shutdown_seconds) or None,
        lifespan="on",
    )
    uvicorn.Server(config).run()
