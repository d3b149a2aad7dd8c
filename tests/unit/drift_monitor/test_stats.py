"""Every statistic against scipy's on the same data; PSI against worked examples."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from sluice.drift_monitor.stats import (
    bin_counts,
    category_counts,
    chi2_test,
    jensen_shannon,
    ks_2samp,
    ks_and_wasserstein,
    psi,
    psi_test,
    quantile_edges,
    wasserstein,
)

RNG = np.random.default_rng(42)
SAMPLES = [
    (RNG.normal(0, 1, 5000), RNG.normal(0, 1, 800)),
    (RNG.normal(0, 1, 3000), RNG.normal(0.3, 1.2, 2000)),
    (RNG.poisson(2, 4000).astype(float), RNG.poisson(2.4, 1500).astype(float)),  # ties
    (RNG.exponential(5, 200), RNG.exponential(5, 20000)),
]


@pytest.mark.parametrize(("a", "b"), SAMPLES)
def test_ks_matches_scipy(a: np.ndarray, b: np.ndarray) -> None:
    ours = ks_2samp(np.sort(a), b, presorted=True)
    theirs = sps.ks_2samp(a, b, method="asymp")
    assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-12)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(("a", "b"), SAMPLES)
def test_wasserstein_matches_scipy_and_is_normalised(a: np.ndarray, b: np.ndarray) -> None:
    theirs = sps.wasserstein_distance(a, b)
    assert wasserstein(a, b).statistic == pytest.approx(theirs, rel=1e-9)
    assert wasserstein(a, b, scale=2.0).statistic == pytest.approx(theirs / 2, rel=1e-9)


@pytest.mark.parametrize(("a", "b"), SAMPLES)
def test_ks_and_wasserstein_in_one_pass_give_the_same_figures(a: np.ndarray, b: np.ndarray) -> None:
    # the report must not change: equal, not approximately equal
    ks, w = ks_and_wasserstein(np.sort(a), b, scale=1.7)
    assert ks == ks_2samp(np.sort(a), b, presorted=True)
    assert w == wasserstein(a, b, scale=1.7)
    assert ks_and_wasserstein(b, a) == (ks_2samp(b, a), wasserstein(b, a))  # neither sorted
    theirs = sps.ks_2samp(a, b, method="asymp")
    assert ks.statistic == pytest.approx(theirs.statistic, abs=1e-12)
    assert w.statistic == pytest.approx(sps.wasserstein_distance(a, b) / 1.7, rel=1e-9)


def test_ks_and_wasserstein_of_an_empty_sample_are_zero() -> None:
    assert ks_and_wasserstein(np.array([1.0, 2.0]), np.array([])) == (
        ks_2samp(np.array([1.0, 2.0]), np.array([])),
        wasserstein(np.array([1.0, 2.0]), np.array([])),
    )


@pytest.mark.parametrize(
    ("ref", "cur"),
    [([500, 300, 200], [60, 25, 15]), ([1000, 10, 0, 5], [100, 3, 7, 0]), ([5, 5], [400, 100])],
)
def test_chi2_matches_scipy_contingency(ref: list[int], cur: list[int]) -> None:
    r, c = np.array(ref), np.array(cur)
    ours = chi2_test(r, c)
    table = np.vstack([r, c])
    table = table[:, table.sum(axis=0) > 0]
    theirs = sps.chi2_contingency(table, correction=False)
    assert ours.statistic == pytest.approx(theirs.statistic, rel=1e-12)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-300)
    assert ours.effect == pytest.approx(np.sqrt(theirs.statistic / table.sum()))


@pytest.mark.parametrize(
    ("ref", "cur"), [([500, 300, 200], [60, 25, 15]), ([10, 0, 5], [0, 3, 7]), ([1, 0], [0, 1])]
)
def test_jensen_shannon_matches_scipy(ref: list[int], cur: list[int]) -> None:
    ours = jensen_shannon(np.array(ref), np.array(cur)).statistic
    assert ours == pytest.approx(jensenshannon(ref, cur, base=2), abs=1e-12)


def test_psi_worked_examples() -> None:
    # (0.25 - 0.5) ln(0.25/0.5) + (0.75 - 0.5) ln(0.75/0.5) = 0.1733 + 0.1014
    assert psi(np.array([50, 50]), np.array([25, 75])) == pytest.approx(0.274653, abs=1e-6)
    assert psi(np.array([25, 75]), np.array([50, 50])) == pytest.approx(0.274653, abs=1e-6)
    assert psi(np.array([3, 1]), np.array([300, 100])) == 0.0
    # an empty reference bin costs a finite amount: proportions are floored at 1e-4
    assert psi(np.array([100, 0]), np.array([50, 50])) == pytest.approx(
        (0.5 - 1.0) * np.log(0.5) + (0.5 - 1e-4) * np.log(0.5 / 1e-4)
    )


def test_psi_p_value_is_the_chi_squared_approximation() -> None:
    ref, cur = np.array([400, 350, 250]), np.array([90, 70, 40])
    value = psi(ref, cur)
    expected = sps.chi2.sf(value * 1000 * 200 / 1200, df=2)
    assert psi_test(ref, cur).p_value == pytest.approx(expected, rel=1e-12)


def test_bin_counts_follow_numpy_histogram_and_clip_outliers() -> None:
    values = RNG.normal(0, 1, 1000)
    edges = quantile_edges(values)
    assert bin_counts(edges, values).tolist() == np.histogram(values, bins=edges)[0].tolist()
    counts = bin_counts(edges, np.array([-100.0, 100.0, np.nan]))
    assert (counts[0], counts[-1], counts.sum()) == (1, 1, 2)
    assert bin_counts(np.array([]), values).size == 0


def test_unseen_and_missing_categories_have_their_own_buckets() -> None:
    values = np.array(["a", "b", "new", None, "new", 3, float("nan")], dtype=object)
    counts, unseen = category_counts(values, ["a", "b", "3"])
    assert counts.tolist() == [1, 1, 1, 2, 2]
    assert unseen == {"new": 2}
    # tests on a reference that has never seen the bucket still work
    ref = np.array([50, 50, 10, 0, 0])
    assert np.isfinite(psi_test(ref, counts).statistic)
    assert chi2_test(ref, counts).p_value is not None
