"""A fake of our Runtime interface and a small model card, for the model server's unit tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from sluice.core.registry import DataInfo, FeatureSpec, ModelCard, Profile
from sluice.model_server.app import create_app
from sluice.model_server.settings import Settings
from tests.support.asgi import AppClient

FEATURES = [
    FeatureSpec(name="age", kind="numeric", dtype="int64", default=40),
    FeatureSpec(name="charges", kind="numeric", dtype="float64", allow_missing=True, default=50.0),
    FeatureSpec(name="senior", kind="numeric", dtype="bool", default=0),
    FeatureSpec(name="plan", kind="categorical", dtype="string", categories=["basic", "premium"]),
    FeatureSpec(
        name="region", kind="categorical", dtype="string", categories=["north", "south"],
        allow_missing=True, default="north",
    ),
]  # fmt: skip
INPUT_TYPES: dict[str, np.dtype[Any]] = {
    "age": np.dtype(np.float64),
    "charges": np.dtype(np.float32),
    "senior": np.dtype(np.float64),
    "plan": np.dtype(object),
    "region": np.dtype(object),
}
ROW = {"age": 30, "charges": 70.5, "senior": False, "plan": "basic", "region": "south"}


def make_card() -> ModelCard:
    return ModelCard(
        model="churn",
        version="v1",
        created_at="2026-11-22T00:00:00Z",
        algorithm="fake",
        hyperparameters={},
        label="churned",
        classes=["0", "1"],
        features=FEATURES,
        metrics={"accuracy": 1.0},
        data=DataInfo(fingerprint="ab" * 32, rows=10, train_rows=8, test_rows=2),
        packages={},
        parity_max_abs_diff=0.0,
    )


class FakeRuntime:
    """p(1) = age / 100, and 0.9 for the premium plan; records every feed it is given."""

    def __init__(self) -> None:
        self.feeds: list[dict[str, np.ndarray]] = []

    @property
    def input_types(self) -> Mapping[str, np.dtype[Any]]:
        return INPUT_TYPES

    @property
    def output_types(self) -> Mapping[str, np.dtype[Any]]:
        return {"label": np.dtype(np.int64), "probabilities": np.dtype(np.float32)}

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, arr in feed.items():  # what onnxruntime would refuse
            assert arr.dtype == INPUT_TYPES[name] and arr.ndim == 2 and arr.shape[1] == 1, name
        self.feeds.append(dict(feed))
        p1 = np.where(feed["plan"][:, 0] == "premium", 0.9, feed["age"][:, 0] / 100)
        probabilities = np.stack([1 - p1, p1], axis=1).astype(np.float32)
        return {"label": (p1 >= 0.5).astype(np.int64), "probabilities": probabilities}


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(registry=tmp_path, model="churn", version="v1", **overrides)


class Served:
    """A test client on an app with the fake runtime, and that runtime."""

    def __init__(self, client: AppClient, runtime: FakeRuntime, registry: CollectorRegistry):
        self.client = client
        self.runtime = runtime
        self.registry = registry


def serve(
    settings: Settings,
    gate: threading.Event | None = None,
    runtime: FakeRuntime | None = None,
    card: ModelCard | None = None,
    profile: Profile | None = None,
) -> Iterator[Served]:
    fake = runtime or FakeRuntime()

    def load() -> FakeRuntime:
        if gate is not None:
            gate.wait(10)
        return fake

    registry = CollectorRegistry()
    app = create_app(
        settings, card=card or make_card(), load_runtime=load, registry=registry, profile=profile
    )
    with AppClient(app) as client:
        if gate is None:
            wait_ready(client)
        yield Served(client, fake, registry)


def wait_ready(client: AppClient) -> None:
    """The model loads in a background task; wait (bounded) for it without sleeping."""
    for _ in range(10_000):
        if client.get("/readyz").status_code == 200:
            return
    raise AssertionError(client.get("/readyz").json())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    yield from serve(make_settings(tmp_path))


def v2_body(rows: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """A V2 infer request with one [N, 1] tensor per feature."""
    rows = rows or [ROW]
    datatypes = {"age": "INT64", "charges": "FP64", "senior": "BOOL", "plan": "BYTES",
                 "region": "BYTES"}  # fmt: skip
    inputs = [
        {"name": n, "shape": [len(rows), 1], "datatype": d, "data": [r[n] for r in rows]}
        for n, d in datatypes.items()
    ]
    return {"inputs": inputs, **extra}
