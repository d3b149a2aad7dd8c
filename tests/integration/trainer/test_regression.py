"""Regressors trained for real on scikit-learn's bundled diabetes table, served by onnxruntime."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingRegressor,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeRegressor

from sluice.core.registry import ModelCard, ModelRegistry
from sluice.trainer.export import PARITY_TOLERANCE, onnx_answers, to_onnx
from sluice.trainer.schema import Column
from sluice.trainer.service import train_and_register

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def diabetes() -> pd.DataFrame:
    table = load_diabetes(as_frame=True).frame
    table.insert(0, "patient_id", range(len(table)))
    return table


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    return ModelRegistry(tmp_path_factory.mktemp("registry"))


@pytest.fixture(scope="module")
def trained(diabetes: pd.DataFrame, registry: ModelRegistry) -> dict[str, ModelCard]:
    return {
        algorithm: train_and_register(
            diabetes, model="diabetes", version=algorithm, registry=registry,
            algorithm=algorithm, label="target", seed=1,
        )
        for algorithm in ("linear", "hgb", "rf")
    }  # fmt: skip


@pytest.mark.parametrize("algorithm", ["linear", "hgb", "rf"])
def test_a_numeric_label_trains_a_regressor_that_onnx_reproduces(
    algorithm: str, trained: dict[str, ModelCard], registry: ModelRegistry, diabetes: pd.DataFrame
) -> None:
    card = trained[algorithm]
    assert card.task == "regression"
    assert card.classes == []
    assert card.entity_key == "patient_id"
    assert {"mae", "rmse", "r2", "cv_mae", "cv_rmse", "cv_r2"} <= set(card.metrics)
    assert 30 < card.metrics["mae"] < 70  # the target spans 25..346
    assert card.metrics["cv_r2"] > 0.25
    assert card.parity_max_abs_diff <= PARITY_TOLERANCE
    path = registry.onnx_path("diabetes", algorithm)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [(o.name, o.type) for o in sess.get_outputs()] == [("value", "tensor(double)")]
    feed = {f.name: diabetes[[f.name]].to_numpy(dtype=np.float64) for f in card.features}
    (values,) = sess.run(["value"], feed)
    assert values.shape == (len(diabetes), 1)
    assert 50 < float(values.mean()) < 250
    profile = registry.profile("diabetes", algorithm)
    assert profile.prediction.score_name == "predicted target"
    assert profile.prediction.label_frequencies == {}
    assert len(profile.prediction.sample) == card.data.test_rows


@pytest.mark.parametrize(
    "regressor",
    [
        RandomForestRegressor(n_estimators=10, random_state=0),
        ExtraTreesRegressor(n_estimators=10, random_state=0),
        GradientBoostingRegressor(n_estimators=30, random_state=0),
        HistGradientBoostingRegressor(max_iter=30, random_state=0),
        DecisionTreeRegressor(max_depth=6, random_state=0),
    ],
    ids=lambda r: type(r).__name__,
)
def test_every_tree_regressor_is_exact_in_double_even_for_large_targets(
    regressor: object, diabetes: pd.DataFrame
) -> None:
    names = [c for c in diabetes.columns if c not in ("patient_id", "target")]
    x = diabetes[names].copy()
    x.loc[x.index % 9 == 0, "bmi"] = np.nan
    y = diabetes["target"] * 10_000  # float32 sums would be off by more than 1e-5 here
    prep = ColumnTransformer([("n", SimpleImputer(strategy="median"), names)])
    pipeline = Pipeline([("prep", prep), ("regressor", regressor)]).fit(x, y)
    features = [Column(n, "numeric", "float64") for n in names]
    got = onnx_answers(to_onnx(pipeline, features, "regression"), features, x, "regression")
    np.testing.assert_allclose(got, pipeline.predict(x), rtol=0, atol=PARITY_TOLERANCE)
