from __future__ import annotations

from pathlib import Path

import pytest

from sluice.core.errors import Conflict, InvalidInput, NotFound
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


def make_card(version: str = "v1") -> ModelCard:
    return ModelCard(
        model="churn",
        version=version,
        created_at="2026-11-22T00:00:00Z",
        algorithm="logreg",
        hyperparameters={"C": 1.0},
        label="churned",
        classes=["0", "1"],
        features=[
            FeatureSpec(name="tenure", kind="numeric", dtype="float64", default=3.0),
            FeatureSpec(name="plan", kind="categorical", dtype="string", categories=["a", "b"]),
        ],
        metrics={"accuracy": 0.9},
        data=DataInfo(fingerprint="ab" * 32, rows=10, train_rows=8, test_rows=2),
        packages={"scikit-learn": "1"},
        parity_max_abs_diff=1e-7,
    )


def make_profile() -> Profile:
    return Profile(
        rows=10,
        features=[
            NumericProfile(
                name="tenure", bins=Bins(edges=[0, 1, 2], counts=[5, 5]), sample=[0.5],
                mean=1, std=0.5, missing=0,
            ),
            CategoricalProfile(name="plan", frequencies={"a": 6, "b": 4}, missing=0),
        ],
        prediction=PredictionProfile(
            score_name="p(1)", bins=Bins(edges=[0, 1], counts=[10]), sample=[0.2],
            label_frequencies={"0": 7, "1": 3},
        ),
    )  # fmt: skip


def test_register_then_read_back(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    path = registry.register(make_card(), make_profile(), b"onnx-bytes")
    assert path == tmp_path / "churn" / "v1"
    assert registry.models() == ["churn"]
    assert registry.versions("churn") == ["v1"]
    assert registry.card("churn", "v1") == make_card()
    assert registry.profile("churn", "v1") == make_profile()
    assert registry.onnx_path("churn", "v1").read_bytes() == b"onnx-bytes"


def test_registering_an_existing_version_fails_and_keeps_the_original(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.register(make_card(), make_profile(), b"first")
    with pytest.raises(Conflict, match="immutable"):
        registry.register(make_card(), make_profile(), b"second")
    assert registry.onnx_path("churn", "v1").read_bytes() == b"first"
    assert [p.name for p in (tmp_path / "churn").iterdir()] == ["v1"]  # no staging left over


def test_unknown_version_names_the_known_ones(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.register(make_card(), make_profile(), b"x")
    with pytest.raises(NotFound, match=r"'v9'.*versions: v1"):
        registry.card("churn", "v9")


@pytest.mark.parametrize("bad", ["", "../etc", "UPPER", "a/b", "-lead", "x" * 64])
def test_unsafe_names_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidInput, match="not allowed"):
        ModelRegistry(tmp_path).path(bad, "v1")
