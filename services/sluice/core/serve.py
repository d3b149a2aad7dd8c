"""Run an ASGI app under uvicorn the way every Sluice service does in production."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from pathlib import Path
from typing import cast

import uvicorn
from fastapi import FastAPI
from starlette.types import Receive, Scope
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from sluice.core.http import HotPath, ShortcutApp
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


class HotHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, but a request the app's hot path matches is answered
    by it directly: no ASGI messages, and status line, headers and body leave in one write.

    uvicorn still parses, keeps connections alive, pipelines, flow-controls and shuts down;
    only the request's cycle is ours. ``hot`` is set on a subclass per app (:func:`hot_protocol`).
    """

    hot: HotPath[object]

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: object) -> None:
        # not the app: uvicorn's own answer (over limit_concurrency), which it keeps
        if app is not self.app or not self.hot.match(cast(Scope, cycle.scope)):
            super()._start_asgi_task(cycle, app)  # type: ignore[arg-type]
            return
        task = self.loop.create_task(self._answer(cycle))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    async def _answer(self, cycle: RequestResponseCycle) -> None:
        """Answer like uvicorn's cycle would (its default ``date`` and ``server`` headers,
        ``connection: close`` when the connection ends), the answer's own headers as they
        are (the hot path's, never a client's)."""
        try:
            answer = await self.hot.respond(cast(Scope, cycle.scope), cast(Receive, cycle.receive))
            if answer is None or cycle.disconnected:
                return
            if cycle.flow.write_paused:
                await cycle.flow.drain()
            status, body, headers = answer
            out = [STATUS_LINE.get(status) or b"HTTP/1.1 %d \r\n" % status]
            for name, value in self.server_state.default_headers:
                out += (name, b": ", value, b"\r\n")
            for name, value in headers:
                out += (name, b": ", value, b"\r\n")
            if not cycle.keep_alive:
                out.append(b"connection: close\r\n")
            out += (b"\r\n", body)
            cycle.response_started = cycle.response_complete = True
            cycle.transport.write(b"".join(out))
            cycle.message_event.set()
            if not cycle.keep_alive:
                cycle.transport.close()
            cycle.on_response()
        except asyncio.CancelledError:
            cycle.transport.close()
            raise
        except Exception:  # HotPath.respond answers its own errors: this is a bug of ours
            log.exception("unexpected error answering %s", cycle.scope.get("path"))
            cycle.transport.close()
        finally:
            cycle.on_response = lambda: None


def hot_protocol(app: FastAPI) -> type[HttpToolsProtocol]:
    """The protocol class that serves ``app``: :class:`HotHttpProtocol` for its hot path,
    uvicorn's own when it has none."""
    hot = getattr(app, "shortcut", None) if isinstance(app, ShortcutApp) else None
    if not isinstance(hot, HotPath):
        return HttpToolsProtocol
    return type("HotHttp", (HotHttpProtocol,), {"hot": hot})


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
        http=hot_protocol(app) if settings.hot_protocol else "httptools",
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
