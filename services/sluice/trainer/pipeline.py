"""The scikit-learn pipeline: scale numbers, one-hot categories, fit a model, score it.

The model is a classifier or a regressor (``task``): ``linear`` (logistic regression, or
ridge regression), ``hgb`` (histogram gradient boosting) or ``rf`` (random forest);
``logreg`` is another name for ``linear``.

``ColumnTransformer`` sends numeric columns through a median ``SimpleImputer`` (only when
the training data has missing numbers) and a ``StandardScaler``, and categorical columns
through ``OneHotEncoder(handle_unknown="ignore")``, so a category never seen in training
counts as "none of the known ones" rather than an error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.model_selection import KFold, cross_validate, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from sluice.core.errors import InvalidInput
from sluice.trainer.schema import Column, Task

ALGORITHMS = ("logreg", "hgb", "rf")
KNOWN = ("linear", *ALGORITHMS)
"""What ``--algorithm`` accepts: ``linear`` and ``logreg`` name the same linear model."""
TEST_SIZE = 0.2
CV_BELOW_ROWS = 5000
"""Regressors trained on fewer rows are also scored by 5-fold cross-validation: a
held-out set of a few hundred rows gives a noisy MAE."""
CV_FOLDS = 5


def make_classifier(algorithm: str, seed: int) -> Any:
    """The classifier for ``algorithm`` (logreg, hgb or rf), seeded for a repeatable fit."""
    if algorithm in ("logreg", "linear"):
        return LogisticRegression(C=1.0, max_iter=2000)
    if algorithm == "hgb":
        return HistGradientBoostingClassifier(
            learning_rate=0.1, max_iter=200, max_leaf_nodes=15, early_stopping=False,
            l2_regularization=1.0, random_state=seed,
        )  # fmt: skip
    if algorithm == "rf":
        return RandomForestClassifier(
            n_estimators=100, min_samples_leaf=5, max_features="sqrt", random_state=seed
        )
    raise InvalidInput(f"unknown algorithm {algorithm!r}: pick one of {', '.join(KNOWN)}")


def make_regressor(algorithm: str, seed: int) -> Any:
    """The regressor for ``algorithm`` (linear/logreg, hgb or rf), seeded."""
    if algorithm in ("linear", "logreg"):
        return Ridge(alpha=1.0)
    if algorithm == "hgb":
        return HistGradientBoostingRegressor(
            learning_rate=0.1, max_iter=200, max_leaf_nodes=15, early_stopping=False,
            l2_regularization=1.0, random_state=seed,
        )  # fmt: skip
    if algorithm == "rf":
        return RandomForestRegressor(
            n_estimators=100, min_samples_leaf=5, max_features=1.0, random_state=seed
        )
    raise InvalidInput(f"unknown algorithm {algorithm!r}: pick one of {', '.join(KNOWN)}")


def build_pipeline(
    features: list[Column],
    algorithm: str,
    seed: int,
    *,
    impute: bool,
    task: Task = "classification",
) -> Pipeline:
    """Preprocessing for ``features`` followed by the ``algorithm`` classifier or regressor."""
    numeric = [c.name for c in features if c.kind == "numeric"]
    categorical = [c.name for c in features if c.kind == "categorical"]
    scale: Any = StandardScaler()
    if impute:
        scale = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", scale)])
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(("numeric", scale, numeric))
    if categorical:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        parts.append(("categorical", encoder, categorical))
    prep = ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)
    if task == "regression":
        return Pipeline([("prep", prep), ("regressor", make_regressor(algorithm, seed))])
    return Pipeline([("prep", prep), ("classifier", make_classifier(algorithm, seed))])


def fit(pipeline: Pipeline, x: pd.DataFrame, y: pd.Series, *, threads: int) -> Pipeline:
    """Fit ``pipeline`` using at most ``threads`` OpenMP and BLAS threads.

    Histogram gradient boosting starts one OpenMP thread per core it sees; on a shared or
    CPU-limited machine (a container with a CPU limit) those threads wait on each other:
    measured 7 s with two threads against 0.45 s with one, on a busy two-core machine.
    """
    with threadpool_limits(limits=threads):
        return pipeline.fit(x, y)


def split(
    x: pd.DataFrame, y: pd.Series, seed: int, *, stratify: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """A train/held-out split, stratified by class unless told not to (regression):
    ``TEST_SIZE`` of the rows are held out."""
    parts = train_test_split(
        x, y, test_size=TEST_SIZE, random_state=seed, stratify=y if stratify else None
    )
    x_train, x_test, y_train, y_test = parts
    return x_train, x_test, y_train, y_test


def evaluate(y_true: pd.Series, proba: np.ndarray, classes: list[Any]) -> dict[str, float]:
    """Held-out accuracy, precision, recall, f1 and ROC AUC.

    Binary: the positive class is ``classes[-1]``. Multi-class: macro averages, and ROC AUC
    one-vs-rest. For example, with classes [0, 1], truth [0, 1, 1, 0] and p(1) of
    [0.2, 0.9, 0.4, 0.6]: predictions [0, 1, 0, 1], accuracy 0.5, precision 0.5,
    recall 0.5, roc_auc 0.75.
    """
    predicted = np.asarray(classes)[proba.argmax(axis=1)]
    truth = y_true.to_numpy()
    if len(classes) == 2:
        positive = classes[-1]
        averaged: dict[str, Any] = {"average": "binary", "pos_label": positive}
        auc = roc_auc_score(truth == positive, proba[:, -1])
    else:
        averaged = {"average": "macro", "labels": list(classes)}
        auc = roc_auc_score(truth, proba, multi_class="ovr", average="macro", labels=classes)
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "precision": float(precision_score(truth, predicted, zero_division=0, **averaged)),
        "recall": float(recall_score(truth, predicted, zero_division=0, **averaged)),
        "f1": float(f1_score(truth, predicted, zero_division=0, **averaged)),
        "roc_auc": float(auc),
    }


def evaluate_regression(y_true: pd.Series, predicted: np.ndarray) -> dict[str, float]:
    """Held-out mean absolute error, root mean squared error and R².

    For example, truth [1, 2, 3, 4] and predictions [1, 2, 3, 6]: MAE 0.5, RMSE 1.0,
    R² = 1 - 4/5 = 0.2.
    """
    truth = y_true.to_numpy(dtype=np.float64)
    return {
        "mae": float(mean_absolute_error(truth, predicted)),
        "rmse": float(root_mean_squared_error(truth, predicted)),
        "r2": float(r2_score(truth, predicted)),
    }


def cross_validate_regression(
    pipeline: Pipeline, x: pd.DataFrame, y: pd.Series, seed: int, *, threads: int
) -> dict[str, float]:
    """Mean MAE, RMSE and R² over ``CV_FOLDS`` shuffled folds (``cv_mae``, ...), fitting
    clones of the unfitted ``pipeline``."""
    folds = KFold(n_splits=CV_FOLDS, shuffle=True, random_state=seed)
    scoring = {
        "mae": "neg_mean_absolute_error",
        "rmse": "neg_root_mean_squared_error",
        "r2": "r2",
    }
    with threadpool_limits(limits=threads):
        scores = cross_validate(pipeline, x, y, cv=folds, scoring=scoring)
    sign = {"mae": -1.0, "rmse": -1.0, "r2": 1.0}
    return {f"cv_{k}": float(sign[k] * np.mean(scores[f"test_{k}"])) for k in scoring}


def hyperparameters(pipeline: Pipeline) -> dict[str, Any]:
    """The final estimator's parameters, JSON-safe (anything else is written as text)."""
    params = pipeline.steps[-1][1].get_params()
    safe: dict[str, Any] = {}
    for key, value in sorted(params.items()):
        if value is None or isinstance(value, bool | int | str):
            safe[key] = value
        elif isinstance(value, float):
            safe[key] = value if np.isfinite(value) else str(value)
        else:
            safe[key] = str(value)
    return safe
