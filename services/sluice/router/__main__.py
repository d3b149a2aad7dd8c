"""``python -m sluice.router``: settings from the environment, JSON logs, serve."""

from __future__ import annotations

from sluice.core.logging import configure_logging
from sluice.core.serve import run_app
from sluice.router.app import create_app
from sluice.router.settings import Settings


def main(settings: Settings | None = None) -> None:
    """Serve until SIGTERM/SIGINT; in-flight requests finish first."""
    settings = settings if settings is not None else Settings()
    configure_logging(settings.log_level, service="router")
    run_app(create_app(settings), settings)


if __name__ == "__main__":
    main()
