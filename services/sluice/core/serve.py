"""Run an ASGI app under uvicorn the way every Sluice service does in production."""

from __future__ import annotations

import gc
import logging
import socket
from pathlib import Path

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
    log, no proxy headers, the startup heap frozen out of the GC (``gc_freeze``), graceful
    stop.

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
        # the peer's address stays the client's: uvicorn would otherwise believe
        # X-Forwarded-For from 127.0.0.1 (a sidecar, a port-forward) whatever the router's
        # trust_forwarded_for says, and a forged one would dodge the per-client rate limit
        proxy_headers=False,
        log_config=None,
        timeout_graceful_shutdown=int(settings.graceful_shutdown_seconds) or None,
        lifespan="on",
    )
    if settings.gc_freeze:
        freeze_startup_heap()
    sockets = [shared_socket(settings.host, settings.port)] if settings.reuse_port else None
    uvicorn.Server(config).run(sockets=sockets)


def shared_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with SO_REUSEPORT: other processes binding the
    same way share the port (uvicorn listens on it once the app has started)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that
    # say they are TCP, and with Nagle on every answer waited 40 ms for a delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def listeners(port: int) -> int:
    """Sockets listening on 127.0.0.1:``port``: one per process sharing it with
    SO_REUSEPORT (from /proc/net/tcp: local address, then state 0A, LISTEN)."""
    local = f"0100007F:{port:04X}"
    rows = (line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:])
    return sum(1 for row in rows if row[1] == local and row[3] == "0A")
