"""The verdict rule on real tables with a known shift (scikit-learn's bundled datasets).

Reference = a random half profiled as the trainer profiles training data, live = the other
half, unchanged or with one feature shifted. Splits are seeded: the counts below are
deterministic, and the bounds they are held to are the documented ones (docs/drift-alerts.md,
"The false-alarm bound") with a binomial margin, not the counts measured today.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import pytest
from scipy.stats import binom
from sklearn import datasets

from sluice.drift_monitor.evaluate import NumericRef, _numeric, numeric_measures
from sluice.drift_monitor.stats import FloatArray, Measure
from sluice.drift_monitor.verdict import Policy, decide
from sluice.trainer.profile import numeric_profile

POLICY = Policy()  # the defaults: KS + missing share decide, Holm across the window, alpha 0.05
SPLITS = 50
Shift = Callable[[FloatArray, FloatArray], FloatArray]


def load(name: str) -> tuple[FloatArray, list[str]]:
    bunch = getattr(datasets, f"load_{name}")()  # bundled with scikit-learn: no download
    return np.asarray(bunch.data, dtype=np.float64), [str(n) for n in bunch.feature_names]


def split(table: FloatArray, seed: int) -> tuple[FloatArray, FloatArray]:
    order = np.random.default_rng(seed).permutation(len(table))
    half = len(table) // 2
    return table[order[:half]], table[order[half:]]


def references(reference: FloatArray, names: list[str]) -> dict[str, NumericRef]:
    rng = np.random.default_rng(0)
    return {n: _numeric(numeric_profile(n, reference[:, j], rng)) for j, n in enumerate(names)}


def measures(
    refs: dict[str, NumericRef], live: FloatArray, names: list[str]
) -> dict[str, dict[str, Measure]]:
    return {n: numeric_measures(refs[n], live[:, j])[0] for j, n in enumerate(names)}


def flagged(tests: dict[str, dict[str, Measure]]) -> set[str]:
    return {n for n, v in decide("m", tests, POLICY).items() if v["drifted"]}


def most_false_alarms(windows: int, rate: float = POLICY.alpha) -> int:
    """The most flagged windows Binomial(windows, rate) gives but once in a thousand runs."""
    return int(binom.isf(0.001, windows, rate))


TABLES = ("breast_cancer", "wine", "diabetes", "iris")


@cache
def unshifted(name: str) -> tuple[int, int, int]:
    """(windows flagged, features flagged, features) over ``SPLITS`` splits without a shift."""
    table, names = load(name)
    windows_flagged = features_flagged = 0
    for seed in range(SPLITS):
        reference, live = split(table, seed)
        found = flagged(measures(references(reference, names), live, names))
        windows_flagged += bool(found)
        features_flagged += len(found)
    return windows_flagged, features_flagged, len(names)


@pytest.mark.parametrize("name", TABLES)
def test_without_a_shift_windows_are_flagged_at_most_at_the_documented_rate(name: str) -> None:
    windows_flagged, features_flagged, features = unshifted(name)
    # P(a window flags anything) <= alpha: 50 windows, at most 8 once in a thousand runs
    assert windows_flagged <= most_false_alarms(SPLITS), (windows_flagged, features_flagged)
    # and so is each feature's own rate (measured: 0 to 3 flags in 200 to 1500 chances)
    assert features_flagged <= most_false_alarms(SPLITS * features)


def test_all_four_tables_together_stay_under_alpha_per_window() -> None:
    flagged_windows = sum(unshifted(name)[0] for name in TABLES)
    windows = SPLITS * len(TABLES)
    assert flagged_windows <= most_false_alarms(windows)  # 200 windows: at most 21
    assert flagged_windows / windows <= POLICY.alpha  # measured: 7 of 200


def scaled(factor: float) -> Shift:
    return lambda column, _reference: column * factor


def moved(sds: float) -> Shift:
    return lambda column, reference: column + sds * reference.std()


@pytest.mark.parametrize(
    ("name", "shift", "seeds", "caught_at_least"),
    [
        ("breast_cancer", scaled(1.35), range(10), 0.95),  # the issue's case
        ("breast_cancer", moved(0.5), range(5), 0.95),
        ("diabetes", moved(0.5), range(5), 0.85),
        ("wine", moved(1.0), range(5), 0.95),  # 89 rows a side: half a sd is below chance
    ],
    ids=["breast_cancer-x1.35", "breast_cancer-+0.5sd", "diabetes-+0.5sd", "wine-+1sd"],
)
def test_one_shifted_feature_is_flagged_and_the_untouched_ones_stay_as_they_were(
    name: str, shift: Shift, seeds: range, caught_at_least: float
) -> None:
    """Each feature in turn is shifted; no other feature may become flagged because of it.

    A bystander flag is one the split did not already have without the shift (the rare
    false alarm of the split itself is the previous test's business).
    """
    table, names = load(name)
    runs = caught = 0
    bystanders: list[tuple[int, str, str]] = []
    for seed in seeds:
        reference, live = split(table, seed)
        refs = references(reference, names)
        base = measures(refs, live, names)
        quiet = flagged(base)
        for j, feature in enumerate(names):
            shifted = dict(base)
            column = shift(live[:, j], reference[:, j])
            shifted[feature] = numeric_measures(refs[feature], column)[0]
            found = flagged(shifted)
            runs += 1
            caught += feature in found
            bystanders += [(seed, feature, other) for other in found - quiet - {feature}]
    assert caught / runs >= caught_at_least, (caught, runs)
    assert bystanders == []


def test_the_issue_case_psi_over_its_threshold_on_bystanders_is_evidence_not_a_verdict() -> None:
    """Breast cancer, 'mean radius' x 1.35: PSI passes 0.1 on untouched features too (as
    the issue saw); the report shows it, the verdict names the shifted feature only."""
    table, names = load("breast_cancer")
    reference, live = split(table, 0)
    live = live.copy()
    live[:, 0] *= 1.35
    verdicts = decide("m", measures(references(reference, names), live, names), POLICY)
    assert [n for n, v in verdicts.items() if v["drifted"]] == ["mean radius"]
    assert verdicts["mean radius"]["flagged_by"] == ["ks"]
    psi_over = [n for n, v in verdicts.items() if v["methods"]["psi"]["over_threshold"]]
    assert len(psi_over) > 1 and "mean radius" in psi_over
    for name in set(psi_over) - {"mean radius"}:
        psi = verdicts[name]["methods"]["psi"]
        assert (psi["role"], psi["drifted"]) == ("evidence", False)


def test_a_feature_that_goes_missing_is_flagged_by_its_missing_share() -> None:
    """KS sees only the values present; the missing-share test sees the rest."""
    table, names = load("breast_cancer")
    reference, live = split(table, 1)
    live = live.copy()
    live[: len(live) // 5, 3] = np.nan  # a fifth of 'mean area' stops arriving
    verdicts = decide("m", measures(references(reference, names), live, names), POLICY)
    assert [n for n, v in verdicts.items() if v["drifted"]] == ["mean area"]
    assert verdicts["mean area"]["flagged_by"] == ["missing"]
