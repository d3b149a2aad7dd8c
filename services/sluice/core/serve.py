"""Run an ASGI app under uvicorn the way every Sluice service does in production."""

from __future__ import annotations

import gc
import logging

import uvicorn
from fastapi import FastAPI

from sluice.core.settings import ServiceSettings

log = logging.getLogger(__name__)

GC_YOUNG_THRESHOLD = 5000
"""Allocations between collections of the youngest generation with ``gc_freeze`` (700 is
Python's default); the older generations keep Python's ratios."""


def freeze_startup_heap() -> None:
    """Collect once, then freeze what survives: the cyclic GC never scans it again."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def run_app(app: FastAPI, settings: ServiceSettings) -> None:
    """Serve ``app`` on one worker with httptools on the configured event loop, no access
    log, the startup heap frozen out of the GC (``gc_freeze``), graceful stop.

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
    if settings.gc_freeze:
        freeze_startup_heap()
    uvicorn.Server(config).run()
