"""Prediction-log traffic for the drift monitor's tests: the churn generator, a registered
model's real ONNX predictions, entries written with ``sluice.core.predlog.encode``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import redis

from sluice.core.predlog import PredictionRecord, encode, stream_key
from sluice.core.registry import ModelRegistry
from sluice.model_server.backends import OnnxRuntime
from sluice.trainer.data import generate_churn
from sluice.trainer.service import train_and_register

TRAIN_ROWS = 20_000


def train(registry_root: Path, model: str, version: str, seed: int = 1) -> ModelRegistry:
    """Register ``model``/``version`` trained by the trainer on generated churn data."""
    registry = ModelRegistry(registry_root)
    table = generate_churn(TRAIN_ROWS, seed)
    train_and_register(
        table, model=model, version=version, registry=registry, algorithm="logreg", seed=seed
    )
    return registry


@dataclass
class Sent:
    row_ids: list[str]
    truth: list[int]


class Traffic:
    """Writes what the router would log for ``model``, answered by a registered version."""

    def __init__(
        self,
        registry: ModelRegistry,
        model: str,
        version: str,
        redis_url: str,
        *,
        cluster: bool = False,
        streams: int = 1,
    ) -> None:
        self.model, self.version = model, version
        self.streams, self.sent = streams, 0
        """Entries go to the model's ``streams`` streams in turn, as the router writes them."""
        self.card = registry.card(model, version)
        self.runtime = OnnxRuntime(registry.onnx_path(model, version))
        self.client: redis.Redis | redis.RedisCluster = (
            redis.RedisCluster.from_url(redis_url) if cluster else redis.Redis.from_url(redis_url)
        )

    def predict(self, table: pd.DataFrame) -> tuple[list[str], list[float]]:
        feed: dict[str, np.ndarray] = {}
        for f in self.card.features:
            column = table[f.name].to_numpy()
            if f.kind == "numeric":
                feed[f.name] = column.astype(np.float64).reshape(-1, 1)
            else:
                feed[f.name] = np.array([str(v) for v in column], dtype=object).reshape(-1, 1)
        answer = self.runtime.run(feed)
        labels, proba = answer["label"], answer["probabilities"]
        return [str(v) for v in labels.tolist()], proba[:, -1].astype(float).tolist()

    def send(
        self,
        rows: int,
        seed: int,
        *,
        per_entry: int = 10,
        prefix: str = "r",
        version: str | None = None,
        role: str = "primary",
        table: pd.DataFrame | None = None,
        score_map: Callable[[np.ndarray], np.ndarray] | None = None,
        **shift: Any,
    ) -> Sent:
        """Log ``rows`` predictions in entries of ``per_entry`` rows; shifts go to the generator."""
        table = table if table is not None else generate_churn(rows, seed, **shift)
        labels, scores = self.predict(table)
        if score_map is not None:
            scores = score_map(np.array(scores)).tolist()
        names = [f.name for f in self.card.features]
        columns = {n: table[n].tolist() for n in names}
        sent = Sent([], table["churned"].astype(int).tolist())
        pipe = self.client.pipeline(transaction=False)
        for n, start in enumerate(range(0, rows, per_entry)):
            end = min(start + per_entry, rows)
            record = PredictionRecord(
                request_id=f"{prefix}{seed}-{n}",
                timestamp=time.time(),
                version=version or self.version,
                role=role,  # type: ignore[arg-type]
                features={k: v[start:end] for k, v in columns.items()},
                labels=labels[start:end],
                scores=scores[start:end],
                latency_ms=1.0,
            )
            sent.row_ids += record.row_ids()
            key = stream_key(self.model, self.sent % self.streams)
            self.sent += 1
            pipe.xadd(key, encode(record))  # type: ignore[arg-type]
        pipe.execute()
        return sent

    def close(self) -> None:
        self.client.close()
