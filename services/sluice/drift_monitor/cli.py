"""``sluice serve drift-monitor``: options override SLUICE_DRIFT_MONITOR_* variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sluice.core.errors import InvalidInput


def serve(
    redis_url: Annotated[
        str | None, typer.Option(help="Redis with the prediction log [env SLUICE_REDIS_URL]")
    ] = None,
    registry: Annotated[
        Path | None, typer.Option(help="Model registry folder [env SLUICE_DRIFT_MONITOR_REGISTRY]")
    ] = None,
    window_size: Annotated[
        int | None, typer.Option(help="Rows that close a window [env ..._WINDOW_SIZE]")
    ] = None,
    window_seconds: Annotated[
        float | None, typer.Option(help="Seconds that close a window [env ..._WINDOW_SECONDS]")
    ] = None,
    min_window_size: Annotated[
        int | None, typer.Option(help="Fewest rows for a verdict [env ..._MIN_WINDOW_SIZE]")
    ] = None,
    alert_webhook_url: Annotated[
        str | None, typer.Option(help="Called when drift persists [env ..._ALERT_WEBHOOK_URL]")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on [env ..._HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [env ..._PORT]")] = None,
    log_level: Annotated[str | None, typer.Option(help="Log level [env ..._LOG_LEVEL]")] = None,
) -> None:
    """Watch the prediction log for drift; serve reports, rollout analysis and feedback."""
    from pydantic import ValidationError

    from sluice.drift_monitor.__main__ import main
    from sluice.drift_monitor.settings import Settings

    given = {
        "redis_url": redis_url, "registry": registry, "window_size": window_size,
        "window_seconds": window_seconds, "min_window_size": min_window_size,
        "alert_webhook_url": alert_webhook_url, "host": host, "port": port,
        "log_level": log_level,
    }  # fmt: skip
    try:
        settings = Settings(**{k: v for k, v in given.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"drift monitor settings: {problems}") from None
    main(settings)
