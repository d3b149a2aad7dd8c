"""Drift statistics as pure, vectorised functions of numpy arrays and counts.

Every two-sample statistic here matches scipy's on the same data (the unit tests check
it); PSI has no scipy counterpart and carries worked examples instead. A result is a
``Measure``: the statistic, the effect size a verdict thresholds, and a p-value where the
method has one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import chdtrc
from scipy.stats import kstwo

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

PSI_FLOOR = 1e-4
"""Smallest proportion PSI uses for a bin, so an empty bin costs a finite amount."""


@dataclass(frozen=True, slots=True)
class Measure:
    statistic: float
    effect: float
    """The effect size a threshold is applied to (the statistic itself, or Cramér's V)."""
    p_value: float | None


def bin_counts(edges: FloatArray, values: FloatArray) -> IntArray:
    """Counts of finite ``values`` in the bins ``edges`` defines; outside values go to the end bins.

    Bins are ``[e0, e1), [e1, e2), ..., [e_{k-1}, e_k]`` like ``np.histogram``.

    >>> bin_counts(np.array([0.0, 1.0, 2.0]), np.array([-5.0, 0.5, 1.0, 2.0, 9.0, np.nan])).tolist()
    [2, 3]
    """
    if edges.size < 2:  # a feature that was always missing in training has no bins
        return np.zeros(0, dtype=np.int64)
    finite = values[np.isfinite(values)]
    index = np.searchsorted(edges[1:-1], finite, side="right")
    return np.bincount(index, minlength=len(edges) - 1).astype(np.int64)


def quantile_edges(values: FloatArray, bins: int = 10) -> FloatArray:
    """Bin edges at the quantiles of the finite ``values`` (duplicates dropped).

    >>> quantile_edges(np.arange(11.0), 2).tolist()
    [0.0, 5.0, 10.0]
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.array([0.0, 1.0])
    edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)))
    return edges if edges.size >= 2 else np.array([edges[0], edges[0]])


def psi(reference: IntArray, current: IntArray) -> float:
    """Population Stability Index: ``sum((c - r) * ln(c / r))`` over bin proportions.

    Proportions below ``PSI_FLOOR`` are raised to it. Symmetric in its arguments.

    >>> round(psi(np.array([50, 50]), np.array([25, 75])), 4)  # .25*ln2 + .25*ln1.5
    0.2747
    >>> psi(np.array([10, 30]), np.array([100, 300]))  # same shape, any size
    0.0
    >>> round(psi(np.array([100, 0]), np.array([99, 1])), 4)  # new bin: .0099*ln100 + .01*ln(1/.99)
    0.0457
    """
    r = np.maximum(reference / max(int(reference.sum()), 1), PSI_FLOOR)
    c = np.maximum(current / max(int(current.sum()), 1), PSI_FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def psi_test(reference: IntArray, current: IntArray) -> Measure:
    """PSI with a p-value: ``PSI * n*m/(n+m)`` is close to chi-squared with k-1 degrees of
    freedom when both samples come from one distribution (k = bins with any count).

    >>> m = psi_test(np.array([500, 500]), np.array([500, 500]))
    >>> (m.statistic, m.p_value)
    (0.0, 1.0)
    """
    value = psi(reference, current)
    n, m = float(reference.sum()), float(current.sum())
    dof = int(np.count_nonzero((reference + current) > 0)) - 1
    if n == 0 or m == 0 or dof < 1:
        return Measure(value, value, None)
    scaled = value * n * m / (n + m)
    return Measure(value, value, float(chdtrc(dof, scaled)))


def ks_2samp(reference: FloatArray, current: FloatArray, *, presorted: bool = False) -> Measure:
    """Two-sample Kolmogorov-Smirnov: D = max |F_ref - F_cur|, asymptotic two-sided p-value.

    Same as ``scipy.stats.ks_2samp(reference, current, method="asymp")``.

    >>> m = ks_2samp(np.array([1.0, 2.0, 3.0, 4.0]), np.array([3.0, 4.0, 5.0, 6.0]))
    >>> m.statistic
    0.5
    """
    a = reference if presorted else np.sort(reference)
    b = np.sort(current)
    n1, n2 = a.size, b.size
    if n1 == 0 or n2 == 0:
        return Measure(0.0, 0.0, None)
    both = np.concatenate([a, b])
    gap = np.abs(
        np.searchsorted(a, both, side="right") / n1 - np.searchsorted(b, both, side="right") / n2
    )
    return _ks(float(gap.max()), n1, n2)


def _ks(d: float, n1: int, n2: int) -> Measure:
    big, small = max(n1, n2), min(n1, n2)
    p = float(np.clip(kstwo.sf(d, np.round(big * small / (big + small))), 0.0, 1.0))
    return Measure(d, d, p)


def wasserstein(reference: FloatArray, current: FloatArray, *, scale: float = 1.0) -> Measure:
    """First Wasserstein (earth mover's) distance divided by ``scale`` (e.g. the reference std).

    Same as ``scipy.stats.wasserstein_distance(reference, current) / scale``; no p-value.

    >>> wasserstein(np.array([0.0, 1.0]), np.array([2.0, 3.0]), scale=2.0).statistic
    1.0
    """
    a, b = np.sort(reference), np.sort(current)
    if a.size == 0 or b.size == 0:
        return Measure(0.0, 0.0, None)
    both = np.sort(np.concatenate([a, b]))
    widths = np.diff(both)
    fa = np.searchsorted(a, both[:-1], side="right") / a.size
    fb = np.searchsorted(b, both[:-1], side="right") / b.size
    value = float(np.sum(np.abs(fa - fb) * widths)) / (scale if scale > 0 else 1.0)
    return Measure(value, value, None)


def ks_and_wasserstein(
    reference: FloatArray, current: FloatArray, *, scale: float = 1.0
) -> tuple[Measure, Measure]:
    """``ks_2samp`` and ``wasserstein`` of two samples of finite values, in one pass.

    The same figures as the two functions (the unit tests check they are equal) in less
    than half the time (1.1 ms -> 0.4 ms for 5,000 reference and 2,000 window values, a
    third of it the p-value): one stable sort of the pooled values, which merges two
    sorted samples in linear time, and a running count, instead of four sorts and four
    binary searches. Both statistics compare the two ECDFs at the pooled values.

    >>> ks, w = ks_and_wasserstein(np.array([0.0, 1.0]), np.array([2.0, 3.0]), scale=2.0)
    >>> ks.statistic, w.statistic
    (1.0, 1.0)
    """
    n1, n2 = reference.size, current.size
    if n1 == 0 or n2 == 0:
        empty = Measure(0.0, 0.0, None)
        return empty, empty
    pooled, fa, fb = pooled_ecdfs(reference, current)
    gap = np.abs(fa - fb)
    value = float(np.sum(gap[:-1] * np.diff(pooled))) / (scale if scale > 0 else 1.0)
    return _ks(float(gap.max()), n1, n2), Measure(value, value, None)


def pooled_ecdfs(a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The pooled values in order, and each sample's ECDF (share of values ``<=``) at them.

    Equal to ``np.searchsorted(a_sorted, pooled, side="right") / a.size`` (and the same
    for ``b``): a tie takes the count at the end of its run of equal values.

    >>> pooled, fa, fb = pooled_ecdfs(np.array([2.0, 1.0]), np.array([2.0, 3.0]))
    >>> pooled.tolist(), fa.tolist(), fb.tolist()
    ([1.0, 2.0, 2.0, 3.0], [0.5, 1.0, 1.0, 1.0], [0.0, 0.5, 0.5, 1.0])
    """
    both = np.concatenate([a, b])
    order = np.argsort(both, kind="stable")
    pooled = both[order]
    in_a = np.cumsum(order < a.size)
    in_b = np.arange(1, both.size + 1) - in_a
    ends = np.flatnonzero(np.append(pooled[1:] != pooled[:-1], True))
    last = np.repeat(ends, np.diff(ends, prepend=-1))
    return pooled, in_a[last] / a.size, in_b[last] / b.size


def chi2_test(reference: IntArray, current: IntArray) -> Measure:
    """Pearson's chi-squared on the 2 x k table of counts; effect size Cramér's V = sqrt(chi2/N).

    Same statistic and p-value as ``scipy.stats.chi2_contingency(table, correction=False)``
    once the categories nobody has are dropped.

    >>> m = chi2_test(np.array([30, 70]), np.array([70, 30]))
    >>> (m.statistic, m.effect)
    (32.0, 0.4)
    """
    table = np.vstack([reference, current]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    total = table.sum()
    rows = table.sum(axis=1)
    if table.shape[1] < 2 or np.any(rows == 0):
        return Measure(0.0, 0.0, None)
    expected = np.outer(rows, table.sum(axis=0)) / total
    stat = float(np.sum((table - expected) ** 2 / expected))
    dof = table.shape[1] - 1
    return Measure(stat, math.sqrt(stat / total), float(chdtrc(dof, stat)))


def jensen_shannon(reference: IntArray, current: IntArray) -> Measure:
    """Jensen-Shannon distance (base 2, in [0, 1]) between the two frequency vectors.

    Same as ``scipy.spatial.distance.jensenshannon(reference, current, base=2)``.

    >>> jensen_shannon(np.array([1, 0]), np.array([0, 1])).statistic
    1.0
    """
    p = reference / max(float(reference.sum()), 1.0)
    q = current / max(float(current.sum()), 1.0)
    mix = (p + q) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / mix), 0.0)
        kl_q = np.where(q > 0, q * np.log2(q / mix), 0.0)
    value = math.sqrt(max(float(kl_p.sum() + kl_q.sum()) / 2.0, 0.0))
    return Measure(value, value, None)


def category_counts(
    values: npt.NDArray[np.object_], categories: list[str]
) -> tuple[IntArray, dict[str, int]]:
    """Counts of ``values`` per category, then a missing bucket, then an unseen bucket.

    Returns the counts (``len(categories) + 2``) and the unseen values with their counts.
    Values are compared as text, so ``1`` matches the category ``"1"``.

    >>> counts, unseen = category_counts(np.array(["a", None, "z", "a"], dtype=object), ["a", "b"])
    >>> counts.tolist(), unseen
    ([2, 0, 1, 1], {'z': 1})
    """
    missing = pd.isna(values)
    present = values[~missing].astype(str)
    names, counts = np.unique(present, return_counts=True)
    position = {name: i for i, name in enumerate(categories)}
    out = np.zeros(len(categories) + 2, dtype=np.int64)
    out[len(categories)] = int(missing.sum())
    unseen: dict[str, int] = {}
    for name, count in zip(names.tolist(), counts.tolist(), strict=True):
        i = position.get(name)
        if i is None:
            unseen[name] = count
            out[-1] += count
        else:
            out[i] = count
    return out, unseen
