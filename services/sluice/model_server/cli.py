"""``sluice serve model-server``: options override SLUICE_MODEL_SERVER_* variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def serve(
    registry: Annotated[
        Path | None, typer.Option(help="Model registry folder [env SLUICE_MODEL_SERVER_REGISTRY]")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model to serve [env ..._MODEL]")] = None,
    version: Annotated[str | None, typer.Option(help="Version to serve [env ..._VERSION]")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on [env ..._HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [env ..._PORT]")] = None,
    max_batch_size: Annotated[
        int | None, typer.Option(help="Most rows per request [env ..._MAX_BATCH_SIZE]")
    ] = None,
    inference_mode: Annotated[
        str | None, typer.Option(help="direct, thread or auto [env ..._INFERENCE_MODE]")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="Log level [env ..._LOG_LEVEL]")] = None,
) -> None:
    """Serve one registered model version over the Open Inference Protocol (V2) and V1."""
    from sluice.model_server.__main__ import main
    from sluice.model_server.settings import load_settings

    given = {
        "registry": registry, "model": model, "version": version, "host": host, "port": port,
        "max_batch_size": max_batch_size, "inference_mode": inference_mode,
        "log_level": log_level,
    }  # fmt: skip
    main(load_settings(**{k: v for k, v in given.items() if v is not None}))
