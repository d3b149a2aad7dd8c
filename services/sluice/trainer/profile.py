"""The reference profile the drift monitor compares live traffic with.

Features are profiled on the training rows. Predictions are profiled on the held-out rows:
a model's scores on rows it was fitted to are overconfident (a random forest's most of
all), so they would not look like the scores it gives live traffic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sluice.core.registry import (
    Bins,
    CategoricalProfile,
    NumericProfile,
    PredictionProfile,
    Profile,
)
from sluice.trainer.schema import Column

BINS = 10
SAMPLE_SIZE = 5000


def quantile_bins(values: np.ndarray, bins: int = BINS) -> Bins:
    """Edges at the quantiles 0, 1/bins, ..., 1 (repeats dropped) and the count in each bin.

    Bin i holds ``edges[i] <= v < edges[i+1]``; the last bin also holds its right edge.
    Missing values are not counted.

    >>> quantile_bins(np.array([1.0, 2.0, 3.0, 4.0]), bins=2)
    Bins(edges=[1.0, 2.5, 4.0], counts=[2, 2])
    >>> quantile_bins(np.array([0.0, 0.0, 0.0, 1.0]), bins=4)  # 0 fills three quartiles
    Bins(edges=[0.0, 0.25, 1.0], counts=[3, 1])
    >>> quantile_bins(np.array([5.0, 5.0]), bins=4)  # one value: one bin of zero width
    Bins(edges=[5.0, 5.0], counts=[2])
    """
    present = values[~np.isnan(values)]
    if present.size == 0:
        return Bins(edges=[], counts=[])
    edges = np.unique(np.quantile(present, np.linspace(0.0, 1.0, bins + 1)))
    if edges.size == 1:
        return Bins(edges=[float(edges[0])] * 2, counts=[int(present.size)])
    counts, _ = np.histogram(present, bins=edges)
    return Bins(edges=[float(e) for e in edges], counts=[int(c) for c in counts])


def bounded_sample(
    values: np.ndarray, rng: np.random.Generator, size: int = SAMPLE_SIZE
) -> list[float]:
    """Up to ``size`` of the non-missing ``values``, drawn uniformly without replacement, sorted.

    >>> bounded_sample(np.array([3.0, np.nan, 1.0]), np.random.default_rng(0))
    [1.0, 3.0]
    """
    present = values[~np.isnan(values)]
    if present.size > size:
        present = rng.choice(present, size=size, replace=False)
    return [float(v) for v in np.sort(present)]


def numeric_profile(name: str, values: np.ndarray, rng: np.random.Generator) -> NumericProfile:
    """Bins, sample, mean, population std and missing count of one numeric feature.

    >>> p = numeric_profile("x", np.array([1.0, 3.0, np.nan]), np.random.default_rng(0))
    >>> (p.mean, p.std, p.missing)
    (2.0, 1.0, 1)
    """
    present = values[~np.isnan(values)]
    return NumericProfile(
        name=name,
        bins=quantile_bins(values),
        sample=bounded_sample(values, rng),
        mean=float(present.mean()) if present.size else 0.0,
        std=float(present.std()) if present.size else 0.0,
        missing=int(values.size - present.size),
    )


def categorical_profile(name: str, values: pd.Series) -> CategoricalProfile:
    """How often each category occurs (sorted by category), and how many are missing.

    >>> categorical_profile("plan", pd.Series(["b", "a", None, "b"])).frequencies
    {'a': 1, 'b': 2}
    """
    present = values.dropna().astype(str)
    counts = present.value_counts()
    return CategoricalProfile(
        name=name,
        frequencies={str(k): int(counts[k]) for k in sorted(counts.index)},
        missing=int(len(values) - len(present)),
    )


def prediction_scores(proba: np.ndarray) -> np.ndarray:
    """One score per row: p(positive class) when binary, the top probability otherwise.

    >>> prediction_scores(np.array([[0.8, 0.2], [0.3, 0.7]])).tolist()
    [0.2, 0.7]
    >>> prediction_scores(np.array([[0.5, 0.2, 0.3]])).tolist()
    [0.5]
    """
    return proba[:, -1] if proba.shape[1] == 2 else proba.max(axis=1)


def prediction_profile(
    proba: np.ndarray, truth: pd.Series, classes: list[str], label: str, rng: np.random.Generator
) -> PredictionProfile:
    """Bins and sample of the scores, and how often each true class occurs."""
    scores = prediction_scores(proba).astype(np.float64)
    name = f"p({label}={classes[-1]})" if len(classes) == 2 else "max_probability"
    counts = truth.astype(str).value_counts()
    return PredictionProfile(
        score_name=name,
        bins=quantile_bins(scores),
        sample=bounded_sample(scores, rng),
        label_frequencies={c: int(counts.get(c, 0)) for c in classes},
    )


def value_profile(values: np.ndarray, label: str, rng: np.random.Generator) -> PredictionProfile:
    """A regressor's predictions: bins and sample of the predicted values, no classes.

    >>> value_profile(np.array([1.0, 2.0]), "charges", np.random.default_rng(0)).score_name
    'predicted charges'
    """
    values = values.astype(np.float64)
    return PredictionProfile(
        score_name=f"predicted {label}",
        bins=quantile_bins(values),
        sample=bounded_sample(values, rng),
        label_frequencies={},
    )


def build_profile(
    x_train: pd.DataFrame,
    features: list[Column],
    held_out_proba: np.ndarray,
    held_out_truth: pd.Series,
    classes: list[str],
    label: str,
    seed: int,
) -> Profile:
    """The whole reference: every feature on the training rows, predictions on held-out rows.

    ``held_out_proba`` is ``[N, n_classes]`` for a classifier; for a regressor (no
    ``classes``) it is the predicted values, ``[N]``.
    """
    rng = np.random.default_rng(seed)
    profiles: list[NumericProfile | CategoricalProfile] = []
    for c in features:
        if c.kind == "numeric":
            values = x_train[c.name].to_numpy(dtype=np.float64)
            profiles.append(numeric_profile(c.name, values, rng))
        else:
            profiles.append(categorical_profile(c.name, x_train[c.name]))
    return Profile(
        rows=len(x_train),
        features=profiles,
        prediction=(
            prediction_profile(held_out_proba, held_out_truth, classes, label, rng)
            if classes
            else value_profile(held_out_proba, label, rng)
        ),
    )
