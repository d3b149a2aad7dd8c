from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sluice.core.registry import Bins
from sluice.trainer.profile import (
    SAMPLE_SIZE,
    bounded_sample,
    build_profile,
    categorical_profile,
    numeric_profile,
    prediction_scores,
    quantile_bins,
)
from sluice.trainer.schema import Column


def test_quantile_bins_worked_examples() -> None:
    assert quantile_bins(np.array([1.0, 2.0, 3.0, 4.0]), bins=2) == Bins(
        edges=[1.0, 2.5, 4.0], counts=[2, 2]
    )
    # 0 fills three quartiles: the repeated edges collapse into one bin
    assert quantile_bins(np.array([0.0, 0.0, 0.0, 1.0]), bins=4) == Bins(
        edges=[0.0, 0.25, 1.0], counts=[3, 1]
    )
    assert quantile_bins(np.array([5.0, 5.0]), bins=4) == Bins(edges=[5.0, 5.0], counts=[2])


def test_quantile_bins_hold_every_present_value_in_about_equal_shares() -> None:
    values = np.random.default_rng(0).normal(size=10_001)
    values[::100] = np.nan
    bins = quantile_bins(values)
    assert len(bins.edges) == 11
    assert sum(bins.counts) == np.count_nonzero(~np.isnan(values))
    assert max(bins.counts) - min(bins.counts) <= 2
    assert bins.edges[0] == np.nanmin(values)
    assert bins.edges[-1] == np.nanmax(values)


def test_sample_is_bounded_sorted_and_repeatable() -> None:
    values = np.arange(20_000, dtype=float)
    first = bounded_sample(values, np.random.default_rng(1))
    assert len(first) == SAMPLE_SIZE
    assert first == sorted(first)
    assert first == bounded_sample(values, np.random.default_rng(1))
    assert set(first) <= set(values.tolist())
    assert bounded_sample(np.array([3.0, np.nan, 1.0]), np.random.default_rng(0)) == [1.0, 3.0]


def test_numeric_profile_counts_missing_and_uses_population_std() -> None:
    profile = numeric_profile("x", np.array([1.0, 3.0, np.nan]), np.random.default_rng(0))
    assert (profile.mean, profile.std, profile.missing) == (2.0, 1.0, 1)
    assert profile.sample == [1.0, 3.0]


def test_categorical_profile_counts_each_category_and_missing() -> None:
    profile = categorical_profile("plan", pd.Series(["b", "a", None, "b"]))
    assert profile.frequencies == {"a": 1, "b": 2}
    assert profile.missing == 1


def test_prediction_score_is_positive_class_probability_or_top_probability() -> None:
    assert prediction_scores(np.array([[0.8, 0.2], [0.3, 0.7]])).tolist() == [0.2, 0.7]
    assert prediction_scores(np.array([[0.5, 0.2, 0.3]])).tolist() == [0.5]


def test_profile_covers_every_feature_and_the_predictions() -> None:
    x = pd.DataFrame({"age": [30.0, 40.0, np.nan, 50.0], "plan": ["a", "b", "a", None]})
    features = [Column("age", "numeric", "int64"), Column("plan", "categorical", "string")]
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    truth = pd.Series([0, 1, 1])
    profile = build_profile(x, features, proba, truth, ["0", "1"], "churned", seed=0)
    assert profile.rows == 4
    age, plan = profile.features
    assert age.kind == "numeric" and age.missing == 1 and age.mean == pytest.approx(40.0)
    assert plan.kind == "categorical" and plan.frequencies == {"a": 2, "b": 1}
    assert profile.prediction.score_name == "p(churned=1)"
    assert profile.prediction.sample == [0.1, 0.4, 0.8]
    assert profile.prediction.label_frequencies == {"0": 1, "1": 2}
    assert sum(profile.prediction.bins.counts) == 3
