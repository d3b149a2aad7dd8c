"""Model performance from joined (prediction, true label) pairs, vectorised.

Binary models (two classes): accuracy, and precision, recall, F1 and ROC AUC for the
positive class (the second class of the model card, whose probability is the logged
score). Other models: accuracy and macro-averaged precision, recall and F1; no AUC.
Figures that are undefined on the data (no positive predicted, one class only) are None.
Regressors: MAE, RMSE, R² and the mean error (bias) of the predicted values against the
true ones; a true label that is not a number is counted, not used.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

from sluice.drift_monitor.stats import FloatArray

Labels = npt.NDArray[np.str_]


def label_text(value: Any) -> str:
    """How labels compare: as text, with booleans and whole floats written as integers.

    >>> [label_text(v) for v in (1, "1", True, 1.0, "yes")]
    ['1', '1', '1', '1', 'yes']
    """
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def roc_auc(truth: npt.NDArray[np.bool_], scores: FloatArray) -> float | None:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula, ties averaged.

    >>> roc_auc(np.array([False, False, True, True]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    positives = int(truth.sum())
    negatives = truth.size - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def _f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None or precision + recall == 0:
        return None
    return 2 * precision * recall / (precision + recall)


def classification(
    truth: Labels, predicted: Labels, scores: FloatArray, classes: list[str]
) -> dict[str, Any]:
    """Figures for one version; ``classes`` in the order of the model's probability output.

    >>> t = np.array(["1", "0", "1", "0"]); p = np.array(["1", "0", "0", "0"])
    >>> out = classification(t, p, np.array([0.9, 0.2, 0.4, 0.3]), ["0", "1"])
    >>> out["accuracy"], out["precision"], out["recall"], round(out["f1"], 4), out["roc_auc"]
    (0.75, 1.0, 0.5, 0.6667, 1.0)
    """
    n = int(truth.size)
    out: dict[str, Any] = {
        "labelled": n, "accuracy": None, "precision": None, "recall": None,
        "f1": None, "roc_auc": None, "positive_rate": None,
    }  # fmt: skip
    if n == 0:
        return out
    out["accuracy"] = float(np.mean(truth == predicted))
    if len(classes) == 2:
        positive = classes[1]
        is_true, is_pred = truth == positive, predicted == positive
        tp = float(np.sum(is_true & is_pred))
        out["precision"] = _ratio(tp, float(is_pred.sum()))
        out["recall"] = _ratio(tp, float(is_true.sum()))
        out["f1"] = _f1(out["precision"], out["recall"])
        out["roc_auc"] = roc_auc(is_true, scores)
        out["positive_rate"] = float(is_true.mean())
        return out
    per_class = []
    for c in np.unique(np.concatenate([truth, predicted])).tolist():
        is_true, is_pred = truth == c, predicted == c
        tp = float(np.sum(is_true & is_pred))
        p, r = _ratio(tp, float(is_pred.sum())) or 0.0, _ratio(tp, float(is_true.sum())) or 0.0
        per_class.append((p, r, _f1(p, r) or 0.0))
    macro = np.mean(np.array(per_class), axis=0)
    out["precision"], out["recall"], out["f1"] = (float(x) for x in macro)
    return out


def regression(truth: list[str], predicted: list[float]) -> dict[str, Any]:
    """Figures for one regressor from true values (as text, as feedback keeps them) and the
    predicted values.

    >>> out = regression(["1", "2", "3", "4"], [1.0, 2.0, 3.0, 6.0])
    >>> out["mae"], out["rmse"], round(out["r2"], 4), out["mean_error"]
    (0.5, 1.0, 0.2, 0.5)
    >>> regression(["1.5", "n/a"], [1.0, 7.0])["not_numeric"]
    1
    """
    true = np.array([_number(t) for t in truth], dtype=np.float64)
    pred = np.asarray(predicted, dtype=np.float64)
    usable = np.isfinite(true) & np.isfinite(pred)
    true, pred = true[usable], pred[usable]
    n = int(true.size)
    out: dict[str, Any] = {
        "labelled": n, "not_numeric": len(truth) - n, "mae": None, "rmse": None,
        "r2": None, "mean_error": None,
    }  # fmt: skip
    if n == 0:
        return out
    error = pred - true
    out["mae"] = float(np.mean(np.abs(error)))
    out["rmse"] = float(np.sqrt(np.mean(error**2)))
    out["mean_error"] = float(np.mean(error))
    spread = float(np.sum((true - true.mean()) ** 2))
    out["r2"] = 1.0 - float(np.sum(error**2)) / spread if n > 1 and spread > 0 else None
    return out


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")
