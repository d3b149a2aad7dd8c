"""JSON-lines logging on stdout, with request_id, model and version from contextvars.

Configured once, in each service's ``__main__`` (and by the CLI); library code only
calls ``logging.getLogger(__name__)``.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
model: ContextVar[str | None] = ContextVar("model", default=None)
version: ContextVar[str | None] = ContextVar("version", default=None)


class _ContextFilter(logging.Filter):
    """Copy the request context onto every record (only the fields that are set)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for var in (request_id, model, version):
            value = var.get()
            if value is not None:
                setattr(record, var.name, value)
        return True


def configure_logging(level: str = "INFO", *, service: str | None = None) -> None:
    """Send JSON lines to stdout at ``level``; idempotent (replaces earlier handlers)."""
    handler = logging.StreamHandler(sys.stdout)
    static = {"service": service} if service else None
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields=static,
        )
    )
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log costs about a third of throughput; our middleware logs errors.
    logging.getLogger("uvicorn.access").disabled = True
