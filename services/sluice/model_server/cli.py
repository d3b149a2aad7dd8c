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


def score(
    model: Annotated[str, typer.Option(help="Model name.")],
    version: Annotated[str, typer.Option(help="Model version.")],
    registry: Annotated[Path, typer.Option(help="Registry folder (ROOT/<model>/<version>/).")],
    table: Annotated[Path, typer.Option("--in", help="Table to score (.csv or .parquet).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the scored table.")],
    features: Annotated[
        Path | None,
        typer.Option(
            help="Feature views (YAML): join the model's features point-in-time when the "
            "table holds only entity ids and timestamps."
        ),
    ] = None,
    timestamp_column: Annotated[
        str, typer.Option(help="With --features: the table's timestamp column.")
    ] = "event_timestamp",
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows scored at a time.")] = 10_000,
) -> None:
    """Score a whole table with a registered version: the same ONNX model and input checks
    as the model server, in chunks, with progress.

    Adds `prediction` (a regressor) or `predicted_label` and `p_<class>` (a classifier).
    """
    import pandas as pd
    from rich.progress import Progress

    from sluice.core.registry import ModelRegistry
    from sluice.model_server.batch import BatchScorer
    from sluice.trainer.progress import ConsoleSteps
    from sluice.trainer.tables import read_table, table_format, write_table

    table_format(out)
    steps = ConsoleSteps()
    with steps.step(f"read {table}"):
        rows = read_table(table)
    scorer = BatchScorer(ModelRegistry(registry), model, version)
    if features is not None and scorer.missing(rows):
        with steps.step(f"join features point-in-time onto {len(rows):,} rows"):
            rows = scorer.join_features(rows, features, timestamp_column)
    parts = []
    with Progress(console=steps.console, transient=True) as progress:
        task = progress.add_task(f"score {len(rows):,} rows", total=len(rows))
        for done, part in scorer.chunks(rows, chunk_rows):
            parts.append(part)
            progress.update(task, completed=done)
    scored = pd.concat([rows, *([pd.concat(parts)] if parts else [])], axis=1)
    with steps.step(f"write {out}"):
        write_table(scored, out)
    typer.echo(f"scored {len(scored):,} rows with {model} {version} into {out}")
