"""A registry with one hand-made reference, and prediction-log entries drawn to match it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sluice.core.predlog import PredictionRecord, encode
from sluice.core.registry import (
    Bins,
    CategoricalProfile,
    DataInfo,
    FeatureSpec,
    ModelCard,
    ModelRegistry,
    NumericProfile,
    PredictionProfile,
    Profile,
)

RNG_REF = np.random.default_rng(0)
X_REF = RNG_REF.normal(0, 1, 20000)
S_REF = RNG_REF.uniform(0, 1, 5000)


def _bins(values: np.ndarray) -> Bins:
    edges = np.unique(np.quantile(values, np.linspace(0, 1, 11)))
    return Bins(edges=edges.tolist(), counts=np.histogram(values, edges)[0].tolist())


def register(
    root: Path, model: str = "churn", version: str = "v1", *, regression: bool = False
) -> ModelRegistry:
    registry = ModelRegistry(root)
    card = ModelCard(
        model=model, version=version, created_at="2026-11-22T00:00:00Z", algorithm="logreg",
        hyperparameters={}, label="y", classes=[] if regression else ["0", "1"],
        task="regression" if regression else "classification",
        features=[FeatureSpec(name="x", kind="numeric", dtype="float64"),
                  FeatureSpec(name="c", kind="categorical", dtype="string", categories=["a", "b"])],
        metrics={}, data=DataInfo(fingerprint="0" * 64, rows=1, train_rows=1, test_rows=0),
        packages={}, parity_max_abs_diff=0.0,
    )  # fmt: skip
    profile = Profile(
        rows=20000,
        features=[
            NumericProfile(name="x", bins=_bins(X_REF), sample=np.sort(X_REF[:5000]).tolist(),
                           mean=0.0, std=1.0, missing=0),
            CategoricalProfile(name="c", frequencies={"a": 12000, "b": 8000}, missing=0),
        ],
        prediction=PredictionProfile(
            score_name="p(y=1)", bins=_bins(S_REF), sample=np.sort(S_REF).tolist(),
            label_frequencies={"0": 2500, "1": 2500},
        ),
    )  # fmt: skip
    registry.register(card, profile, b"onnx")
    return registry


def entries(
    n_entries: int, rows: int, seed: int, *, shift: float = 0.0, version: str = "v1",
    start_ms: int = 1_000, ts: float = 1_000.0,
) -> list[tuple[str, dict[bytes, bytes]]]:  # fmt: skip
    """Log entries whose values follow the reference (``x`` moved by ``shift``)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_entries):
        scores = rng.uniform(0, 1, rows)
        record = PredictionRecord(
            request_id=f"r{seed}-{i}", timestamp=ts + i * 0.001, version=version, role="primary",
            features={"x": (rng.normal(shift, 1, rows)).tolist(),
                      "c": rng.choice(["a", "b"], rows, p=[0.6, 0.4]).tolist()},
            labels=[str(int(s > 0.5)) for s in scores], scores=scores.tolist(), latency_ms=1.0,
        )  # fmt: skip
        out.append((f"{start_ms + i}-0", encode(record)))
    return out


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return register(tmp_path / "registry")
