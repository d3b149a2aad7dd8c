"""Train every algorithm for real on a small generated table and read the results back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from sklearn.datasets import load_wine
from sklearn.metrics import roc_auc_score

from sluice.core.errors import Conflict, InvalidInput
from sluice.core.registry import ModelCard, ModelRegistry
from sluice.trainer import service
from sluice.trainer.data import generate_churn
from sluice.trainer.errors import ParityFailed
from sluice.trainer.export import PARITY_TOLERANCE, parity, to_onnx
from sluice.trainer.pipeline import ALGORITHMS, build_pipeline, fit
from sluice.trainer.schema import feature_frame, infer_schema, label_values
from sluice.trainer.service import train_and_register
from sluice.trainer.tables import fingerprint, read_table

pytestmark = pytest.mark.integration

CHURN_FEATURES = [
    "age", "tenure_months", "monthly_charges", "total_charges", "support_calls",
    "data_usage_gb", "days_since_last_login", "num_products", "region", "plan", "contract",
    "payment_method",
]  # fmt: skip


@pytest.fixture(scope="module")
def churn() -> pd.DataFrame:
    return generate_churn(3000, seed=1)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    return ModelRegistry(tmp_path_factory.mktemp("registry"))


@pytest.fixture(scope="module")
def trained(churn: pd.DataFrame, registry: ModelRegistry) -> dict[str, ModelCard]:
    """One registered version per algorithm: churn/logreg, churn/hgb, churn/rf."""
    return {
        algorithm: train_and_register(
            churn, model="churn", version=algorithm, registry=registry, algorithm=algorithm,
            seed=3, source="test",
        )
        for algorithm in ALGORITHMS
    }  # fmt: skip


def session(registry: ModelRegistry, model: str, version: str) -> ort.InferenceSession:
    path = registry.onnx_path(model, version)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def predict(sess: ort.InferenceSession, card: ModelCard, table: pd.DataFrame) -> np.ndarray:
    feed = {}
    for spec in card.features:
        values = table[spec.name]
        if spec.kind == "numeric":
            feed[spec.name] = values.to_numpy(dtype=np.float64).reshape(-1, 1)
        else:
            feed[spec.name] = values.astype(str).to_numpy(dtype=object).reshape(-1, 1)
    labels, probabilities = sess.run(["label", "probabilities"], feed)
    assert probabilities.shape == (len(table), len(card.classes))
    assert set(map(str, labels.tolist())) <= set(card.classes)
    return np.asarray(probabilities)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_registered_model_scores_fresh_customers_as_well_as_its_card_says(
    algorithm: str, trained: dict[str, ModelCard], registry: ModelRegistry
) -> None:
    card = trained[algorithm]
    assert card.parity_max_abs_diff <= PARITY_TOLERANCE
    assert 0.78 <= card.metrics["roc_auc"] <= 0.95
    sess = session(registry, "churn", algorithm)
    assert [(i.name, i.type, i.shape[1]) for i in sess.get_inputs()] == [
        (s.name, "tensor(double)" if s.kind == "numeric" else "tensor(string)", 1)
        for s in card.features
    ]
    assert [(o.name, o.type) for o in sess.get_outputs()] == [
        ("label", "tensor(int64)"), ("probabilities", "tensor(double)"),
    ]  # fmt: skip
    fresh = generate_churn(2000, seed=99)
    probabilities = predict(sess, card, fresh)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    fresh_auc = roc_auc_score(fresh["churned"], probabilities[:, card.classes.index("1")])
    assert fresh_auc == pytest.approx(card.metrics["roc_auc"], abs=0.05)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_onnx_reproduces_scikit_learn_on_every_row_including_missing_values(
    algorithm: str, churn: pd.DataFrame
) -> None:
    table = churn.copy()
    table.loc[table.index % 7 == 0, "monthly_charges"] = np.nan
    table.loc[table.index % 11 == 0, "age"] = np.nan
    schema = infer_schema(table, "churned")
    x, y = feature_frame(table, schema), label_values(table["churned"])
    pipeline = fit(build_pipeline(schema.features, algorithm, seed=0, impute=True), x, y, threads=1)
    onnx_model = to_onnx(pipeline, schema.features)
    # every training row: tree thresholds sit between (or on) these very values
    diff = parity(onnx_model, schema.features, x, pipeline.predict_proba(x))
    assert diff <= PARITY_TOLERANCE


def test_card_and_profile_record_how_the_model_was_made(
    trained: dict[str, ModelCard], registry: ModelRegistry, churn: pd.DataFrame
) -> None:
    card = registry.card("churn", "hgb")
    assert card == trained["hgb"]
    assert (card.algorithm, card.label, card.classes) == ("hgb", "churned", ["0", "1"])
    assert card.hyperparameters["random_state"] == 3
    assert [f.name for f in card.features] == CHURN_FEATURES
    assert card.entity_key == "customer_id"
    plan = next(f for f in card.features if f.name == "plan")
    assert plan.categories == ["basic", "premium", "standard"]
    assert plan.default in plan.categories
    assert set(card.metrics) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    assert (card.data.rows, card.data.train_rows, card.data.test_rows) == (3000, 2400, 600)
    assert card.data.fingerprint == fingerprint(churn)
    assert card.data.source == "test"
    assert {"scikit-learn", "skl2onnx", "onnx", "onnxruntime"} <= set(card.packages)
    profile = registry.profile("churn", "hgb")
    assert profile.rows == 2400
    assert [f.name for f in profile.features] == CHURN_FEATURES
    age = profile.features[0]
    assert age.kind == "numeric" and sum(age.bins.counts) == 2400
    assert 0 < len(age.sample) <= 2400
    assert sum(profile.prediction.label_frequencies.values()) == 600
    assert profile.prediction.score_name == "p(churned=1)"


def test_an_existing_version_is_refused_before_training_and_left_untouched(
    trained: dict[str, ModelCard],
    registry: ModelRegistry,
    churn: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = registry.path("churn", "logreg")
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("training started for a version that exists")

    monkeypatch.setattr(service, "build_pipeline", no_training)
    with pytest.raises(Conflict, match=r"'logreg' is already registered.*immutable"):
        train_and_register(churn, model="churn", version="logreg", registry=registry)
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}
    assert after == before
    assert trained["logreg"] == registry.card("churn", "logreg")


def test_a_model_that_fails_parity_is_not_registered(
    churn: pd.DataFrame, registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "parity", lambda *_: 1e-3)
    with pytest.raises(ParityFailed, match=r"differs from scikit-learn by up to 0\.001"):
        train_and_register(
            churn, model="churn", version="drifty", registry=registry, algorithm="logreg"
        )
    assert "drifty" not in registry.versions("churn")
    assert not [p for p in (registry.root / "churn").iterdir() if p.name.startswith(".")]


def test_an_unusable_table_writes_nothing(churn: pd.DataFrame, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    with pytest.raises(InvalidInput, match="no label column 'nope'; the table's columns are: cu"):
        train_and_register(churn, model="churn", version="v1", registry=registry, label="nope")
    assert registry.models() == []


def test_a_multiclass_csv_with_other_column_names_trains(tmp_path: Path) -> None:
    wine = load_wine(as_frame=True).frame
    wine.insert(0, "bottle_id", [f"B{i}" for i in range(len(wine))])
    wine.to_csv(tmp_path / "wine.csv", index=False)
    registry = ModelRegistry(tmp_path / "registry")
    card = train_and_register(
        read_table(tmp_path / "wine.csv"), model="wine", version="v1", registry=registry,
        label="target", algorithm="hgb",
    )  # fmt: skip
    assert card.classes == ["0", "1", "2"]
    assert card.entity_key == "bottle_id"
    names = [f.name for f in card.features]
    assert "od280/od315_of_diluted_wines" in names  # ONNX input names keep the "/"
    assert card.metrics["accuracy"] >= 0.85
    assert card.parity_max_abs_diff <= PARITY_TOLERANCE
    probabilities = predict(session(registry, "wine", "v1"), card, wine)
    assert (probabilities.argmax(axis=1) == wine["target"].to_numpy()).mean() >= 0.9
