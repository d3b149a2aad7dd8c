from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from sluice.drift_monitor.performance import classification, roc_auc


def test_binary_figures_match_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 2, 2000)
    scores = np.clip(truth * 0.3 + rng.uniform(0, 0.7, 2000), 0, 1).round(2)  # with ties
    predicted = (scores > 0.5).astype(int)
    out = classification(truth.astype(str), predicted.astype(str), scores, ["0", "1"])
    assert out["labelled"] == 2000
    assert out["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert out["precision"] == pytest.approx(precision_score(truth, predicted))
    assert out["recall"] == pytest.approx(recall_score(truth, predicted))
    assert out["f1"] == pytest.approx(f1_score(truth, predicted))
    assert out["roc_auc"] == pytest.approx(roc_auc_score(truth, scores))


def test_multiclass_is_macro_averaged_without_auc() -> None:
    truth = np.array(["a", "b", "c", "a", "b", "c"])
    predicted = np.array(["a", "b", "b", "a", "c", "c"])
    out = classification(truth, predicted, np.zeros(6), ["a", "b", "c"])
    assert out["f1"] == pytest.approx(f1_score(truth, predicted, average="macro"))
    assert out["roc_auc"] is None


def test_undefined_figures_are_none() -> None:
    assert roc_auc(np.array([True, True]), np.array([0.1, 0.2])) is None
    out = classification(np.array([], dtype=str), np.array([], dtype=str), np.zeros(0), ["0", "1"])
    assert out["accuracy"] is None and out["labelled"] == 0
