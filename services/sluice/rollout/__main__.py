"""``python -m sluice.rollout``: settings from the environment, JSON logs, serve."""

from __future__ import annotations

from sluice.core.logging import configure_logging
from sluice.core.serve import run_app
from sluice.rollout.app import create_app
from sluice.rollout.settings import Settings


def main(settings: Settings | None = None) -> None:
    """Serve until SIGTERM/SIGINT; the lease is released on the way out."""
    settings = settings if settings is not None else Settings()
    configure_logging(settings.log_level, service="rollout")
    run_app(create_app(settings), settings)


if __name__ == "__main__":
    main()
