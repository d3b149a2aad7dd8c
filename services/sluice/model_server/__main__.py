"""``python -m sluice.model_server``: settings from the environment, JSON logs, serve."""

from __future__ import annotations

import sys

from sluice.core import logging as ctx
from sluice.core.errors import SluiceError
from sluice.core.logging import configure_logging
from sluice.core.serve import run_app
from sluice.model_server.app import create_app
from sluice.model_server.settings import Settings, load_settings


def main(settings: Settings | None = None) -> None:
    """Serve until SIGTERM/SIGINT; in-flight requests finish first."""
    if settings is None:
        try:
            settings = load_settings()
        except SluiceError as exc:
            sys.exit(f"error: {exc.message}")
    configure_logging(settings.log_level, service="model_server")
    # Set before the event loop starts, so every request's context inherits them.
    ctx.model.set(settings.model)
    ctx.version.set(settings.version)
    run_app(create_app(settings), settings)


if __name__ == "__main__":
    main()
