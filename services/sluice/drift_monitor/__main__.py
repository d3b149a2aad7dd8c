"""``python -m sluice.drift_monitor``: settings from the environment, JSON logs, serve."""

from __future__ import annotations

from sluice.core.logging import configure_logging
from sluice.core.serve import run_app
from sluice.drift_monitor.app import create_app
from sluice.drift_monitor.settings import Settings


def main(settings: Settings | None = None) -> None:
    """Serve until SIGTERM/SIGINT; leases are released on the way out."""
    settings = settings if settings is not None else Settings()
    configure_logging(settings.log_level, service="drift_monitor")
    run_app(create_app(settings), settings)


if __name__ == "__main__":
    main()
