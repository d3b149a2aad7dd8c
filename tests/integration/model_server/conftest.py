"""A churn model trained once per session by the trainer, and real model server processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sluice.core.registry import ModelCard, ModelRegistry
from sluice.trainer.data import generate_churn
from sluice.trainer.pipeline import build_pipeline, split
from sluice.trainer.schema import feature_frame, infer_schema, label_values
from sluice.trainer.service import train_and_register
from tests.support.procs import Process, free_port, running, sluice_command

MODEL, VERSION, SEED = "churn", "v1", 0
TRAIN_ROWS = 1500


@dataclass
class Trained:
    registry: ModelRegistry
    card: ModelCard
    predict_proba: Callable[[pd.DataFrame], np.ndarray]
    """scikit-learn's probabilities from the same fit as the registered ONNX model."""
    rows: pd.DataFrame
    """Fresh customers (not the training table), feature columns only."""


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """churn/v1 registered by the trainer, and the scikit-learn pipeline it exported.

    The registry keeps only ONNX, so the pipeline is fitted again with the trainer's own
    steps on the same table and seed (histogram gradient boosting with a fixed
    random_state is deterministic), which is the model a data scientist would compare to.
    """
    table = generate_churn(TRAIN_ROWS, seed=3)
    registry = ModelRegistry(tmp_path_factory.mktemp("registry"))
    card = train_and_register(table, model=MODEL, version=VERSION, registry=registry, seed=SEED)
    schema = infer_schema(table, card.label)
    x = feature_frame(table, schema)
    x_train, _, y_train, _ = split(x, label_values(table[card.label]), SEED)
    pipeline = build_pipeline(schema.features, card.algorithm, SEED, impute=False)
    pipeline.fit(x_train, y_train)
    fresh = generate_churn(64, seed=99)
    rows = fresh[[f.name for f in card.features]]
    return Trained(
        registry, card, lambda df: pipeline.predict_proba(feature_frame(df, schema)), rows
    )


StartServer = Callable[..., AbstractContextManager[Process]]


@pytest.fixture(scope="session")
def start_server(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> StartServer:
    """Start `sluice serve model-server` on ``port`` or a random one; extra settings as
    keywords."""

    @contextmanager
    def start(
        registry: Path | None = None,
        ready_path: str | None = "/readyz",
        port: int | None = None,
        **settings: Any,
    ) -> Iterator[Process]:
        port = port or free_port()
        argv = [*sluice_command(), "serve", "model-server",
                "--registry", str(registry or trained.registry.root),
                "--model", MODEL, "--version", VERSION, "--port", str(port)]  # fmt: skip
        env = {f"SLUICE_MODEL_SERVER_{k.upper()}": str(v) for k, v in settings.items()}
        log = tmp_path_factory.mktemp("server") / "server.log"
        base = f"http://127.0.0.1:{port}"
        ready = f"{base}{ready_path}" if ready_path else None
        with running(argv, log=log, env=env, ready_url=ready) as proc:
            proc.url = base
            yield proc

    return start


@pytest.fixture(scope="module")
def server(start_server: StartServer) -> Iterator[Process]:
    """One server for the read-only tests of a module."""
    with start_server(max_batch_size=256, max_body_bytes=200_000) as proc:
        yield proc


def v2_inputs(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """One [N, 1] tensor per feature, as a client holding a DataFrame would send it."""
    inputs = []
    for name in rows.columns:
        column = rows[name]
        if pd.api.types.is_integer_dtype(column):
            datatype, data = "INT64", column.astype("int64").tolist()
        elif pd.api.types.is_float_dtype(column):
            datatype, data = "FP64", column.astype("float64").tolist()
        else:
            datatype, data = "BYTES", column.astype(str).tolist()
        inputs.append({"name": name, "shape": [len(rows), 1], "datatype": datatype, "data": data})
    return inputs
