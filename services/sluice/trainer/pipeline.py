"""The scikit-learn pipeline: scale numbers, one-hot categories, fit a classifier, score it.

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
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from sluice.core.errors import InvalidInput
from sluice.trainer.schema import Column

ALGORITHMS = ("logreg", "hgb", "rf")
TEST_SIZE = 0.2


def make_classifier(algorithm: str, seed: int) -> Any:
    """The classifier for ``algorithm`` (logreg, hgb or rf), seeded for a repeatable fit."""
    if algorithm == "logreg":
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
    raise InvalidInput(f"unknown algorithm {algorithm!r}: pick one of {', '.join(ALGORITHMS)}")


def build_pipeline(features: list[Column], algorithm: str, seed: int, *, impute: bool) -> Pipeline:
    """Preprocessing for ``features`` followed by the ``algorithm`` classifier."""
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
    x: pd.DataFrame, y: pd.Series, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """A stratified train/held-out split: ``TEST_SIZE`` of the rows are held out."""
    parts = train_test_split(x, y, test_size=TEST_SIZE, random_state=seed, stratify=y)
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


def hyperparameters(pipeline: Pipeline) -> dict[str, Any]:
    """The classifier's parameters, JSON-safe (anything else is written as text)."""
    params = pipeline.named_steps["classifier"].get_params()
    safe: dict[str, Any] = {}
    for key, value in sorted(params.items()):
        if value is None or isinstance(value, bool | int | str):
            safe[key] = value
        elif isinstance(value, float):
            safe[key] = value if np.isfinite(value) else str(value)
        else:
            safe[key] = str(value)
    return safe
