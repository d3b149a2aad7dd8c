from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import is_regressor

from sluice.core.errors import InvalidInput
from sluice.trainer.pipeline import (
    build_pipeline,
    evaluate,
    evaluate_regression,
    hyperparameters,
    make_classifier,
)
from sluice.trainer.schema import Column


def test_binary_metrics_worked_example() -> None:
    proba_1 = np.array([0.2, 0.9, 0.4, 0.6])
    metrics = evaluate(pd.Series([0, 1, 1, 0]), np.c_[1 - proba_1, proba_1], [0, 1])
    assert metrics == {
        "accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5, "roc_auc": 0.75,
    }  # fmt: skip


def test_binary_positive_class_is_the_last_one() -> None:
    proba_yes = np.array([0.9, 0.8, 0.1, 0.3])
    metrics = evaluate(
        pd.Series(["yes", "yes", "no", "yes"]), np.c_[1 - proba_yes, proba_yes], ["no", "yes"]
    )
    assert metrics["precision"] == 1.0
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["roc_auc"] == 1.0


def test_multiclass_metrics_are_macro_averaged() -> None:
    proba = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]])
    metrics = evaluate(pd.Series(["a", "b", "c", "b"]), proba, ["a", "b", "c"])
    assert metrics["accuracy"] == 0.75
    assert metrics["recall"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert metrics["roc_auc"] == pytest.approx(1.0)


def test_unknown_algorithm_is_refused_with_the_choices() -> None:
    with pytest.raises(
        InvalidInput, match="unknown algorithm 'svm': pick one of linear, logreg, hgb, rf"
    ):
        make_classifier("svm", 0)


def test_hyperparameters_are_json_safe_and_include_the_seed() -> None:
    pipeline = build_pipeline([Column("x", "numeric", "float64")], "rf", seed=7, impute=True)
    params = hyperparameters(pipeline)
    assert params["random_state"] == 7
    assert params["n_estimators"] == 100
    json.dumps(params, allow_nan=False)


def test_unknown_categories_are_ignored_not_rejected() -> None:
    features = [Column("x", "numeric", "float64"), Column("c", "categorical", "string")]
    pipeline = build_pipeline(features, "logreg", seed=0, impute=False)
    x = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "c": ["a", "b", "a", "b"]})
    pipeline.fit(x, [0, 1, 0, 1])
    proba = pipeline.predict_proba(pd.DataFrame({"x": [1.0], "c": ["never seen"]}))
    assert proba.shape == (1, 2)


def test_regression_metrics_worked_example() -> None:
    metrics = evaluate_regression(pd.Series([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 6.0]))
    assert metrics == {"mae": 0.5, "rmse": 1.0, "r2": pytest.approx(0.2)}


@pytest.mark.parametrize("algorithm", ["linear", "logreg", "hgb", "rf"])
def test_a_regression_pipeline_ends_in_a_regressor(algorithm: str) -> None:
    pipeline = build_pipeline(
        [Column("x", "numeric", "float64")], algorithm, seed=0, impute=False, task="regression"
    )
    name, estimator = pipeline.steps[-1]
    assert name == "regressor"
    assert is_regressor(estimator)
