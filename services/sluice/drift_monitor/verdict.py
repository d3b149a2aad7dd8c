"""Drift verdicts whose false-alarm rate per window is bounded: one test per question.

**The rule.** Each feature (and each output: the score, the predicted label) is judged by
its *tests*: KS on the values of a numeric one (``ks``), plus a chi-squared test of its
missing share when either side has missing values (``missing``); chi-squared on the
category counts of a categorical one (``chi2``; missing and unseen values are buckets of
it). Every test of the window goes into one family, and the p-values are corrected across
the family (Holm by default). A test flags when its corrected p-value is below ``alpha``
AND its effect size reaches the method's threshold (KS D, Cramér's V, phi). A feature
drifts when one of its tests flags.

PSI, Wasserstein and Jensen-Shannon are *evidence*: computed, reported with their
thresholds (``over_threshold``), never a verdict on their own. The old rule (any of three
methods) gave three chances per feature to cry wolf, and PSI's p-value is the loosest of
them (binned, floored, and no better than its rows are independent).

**The bound.** When nothing changed and rows are independent, every test's p-value is
uniform or conservative (KS is conservative with ties), so with ``holm`` or ``bonferroni``
P(a window flags anything) <= ``alpha``, however the features correlate; with ``holm``
the chance that an untouched feature is named beside a real shift is <= ``alpha`` too.
``bh`` bounds the same per-window rate under independent or positively dependent tests
and then controls the share of wrong names among the flagged ones. The thresholds only
lower the rate further. Replayed or duplicated rows break independence (a p-value then
counts the same row many times); the effect-size thresholds are what is left then.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from sluice.drift_monitor.stats import FloatArray, Measure

Method = Literal["psi", "ks", "wasserstein", "chi2", "jensen_shannon", "missing"]
Correction = Literal["holm", "bh", "bonferroni", "none"]
NUMERIC_METHODS: tuple[Method, ...] = ("ks", "missing", "psi", "wasserstein")
CATEGORICAL_METHODS: tuple[Method, ...] = ("chi2", "psi", "jensen_shannon")
TESTS: frozenset[str] = frozenset({"ks", "chi2", "missing"})
"""The methods that carry a verdict; every other one is evidence."""

DEFAULT_THRESHOLDS: dict[str, float] = {
    "ks": 0.1,
    "chi2": 0.1,
    "missing": 0.1,
    "psi": 0.1,
    "wasserstein": 0.15,
    "jensen_shannon": 0.1,
}
"""Effect sizes: KS D, Cramér's V, phi of the missing share; evidence: PSI, Wasserstein /
reference std, JS distance (marked ``over_threshold``, no verdict)."""

Tests = dict[str, dict[str, Measure]]
"""Per feature (or output), per method, its measure."""


@dataclass(frozen=True)
class Policy:
    alpha: float = 0.05
    correction: Correction = "holm"
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    overrides: dict[str, dict[str, float]] = field(default_factory=dict)
    """``{"feature": {"ks": 0.2}}`` for every model, or ``{"model/feature": {...}}`` for one."""
    ignore: frozenset[str] = frozenset()
    """Features (``feature`` or ``model/feature``) measured and reported, never tested."""
    min_window_size: int = 500

    def threshold(self, model: str, feature: str, method: str) -> float:
        for key in (f"{model}/{feature}", feature):
            if method in self.overrides.get(key, {}):
                return self.overrides[key][method]
        return self.thresholds[method]

    def ignored(self, model: str, feature: str) -> bool:
        return feature in self.ignore or f"{model}/{feature}" in self.ignore


def adjust(p_values: FloatArray, correction: Correction) -> FloatArray:
    """Corrected p-values; NaN (no p-value) stays NaN and does not count as a test.

    Holm: the i-th smallest of m is multiplied by ``m - i + 1``, then made non-decreasing;
    it rejects whatever Bonferroni rejects and more, with the same family-wise bound.
    Benjamini-Hochberg matches ``scipy.stats.false_discovery_control(p, method="bh")``.

    >>> adjust(np.array([0.01, 0.02, np.nan, 0.5]), "bonferroni").tolist()
    [0.03, 0.06, nan, 1.0]
    >>> adjust(np.array([0.01, 0.04, 0.03]), "holm").round(4).tolist()  # .01*3, .04*1 -> .06, .03*2
    [0.03, 0.06, 0.06]
    >>> adjust(np.array([0.01, 0.02, 0.04]), "bh").round(4).tolist()  # 0.01*3/1, 0.02*3/2, .04
    [0.03, 0.03, 0.04]
    """
    out = np.full(p_values.shape, np.nan)
    mask = ~np.isnan(p_values)
    p = p_values[mask]
    m = p.size
    if m == 0:
        return out
    if correction == "none":
        out[mask] = p
    elif correction == "bonferroni":
        out[mask] = np.minimum(p * m, 1.0)
    else:
        order = np.argsort(p, kind="stable")
        rank = np.arange(1, m + 1)
        if correction == "holm":
            monotone = np.maximum.accumulate(p[order] * (m - rank + 1))
        else:
            scaled = p[order] * m / rank
            monotone = np.minimum.accumulate(scaled[::-1])[::-1]
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(monotone, 1.0)
        out[mask] = adjusted
    return out


def decide(model: str, measures: Tests, policy: Policy) -> dict[str, dict[str, Any]]:
    """Per feature: each method's figures, and whether the feature drifted (one family).

    >>> out = decide("m", {"a": {"ks": Measure(0.3, 0.3, 1e-9)},
    ...                    "b": {"ks": Measure(0.3, 0.3, 0.2)}}, Policy())
    >>> out["a"]["drifted"], out["b"]["drifted"]  # b: a large effect but not significant
    (True, False)
    >>> out = decide("m", {"c": {"ks": Measure(0.05, 0.05, 0.5), "psi": Measure(0.2, 0.2, 1e-4)}},
    ...              Policy())
    >>> out["c"]["drifted"], out["c"]["methods"]["psi"]["over_threshold"]  # PSI: evidence
    (False, True)
    """
    return decide_together(model, {"": measures}, policy)[""]


def decide_together(
    model: str, groups: Mapping[str, Tests], policy: Policy
) -> dict[str, dict[str, dict[str, Any]]]:
    """``decide`` for several groups (features, outputs) corrected as one family.

    Two features each with KS p = 0.02 and one output with p = 0.03: Holm multiplies by
    3, 2, 1 in order of p (ties keep their order): 0.06, 0.06 (non-decreasing), 0.06, so
    nothing flags at alpha 0.05 although each alone would.

    >>> ks = lambda p: {"ks": Measure(0.2, 0.2, p)}
    >>> out = decide_together("m", {"features": {"a": ks(0.02), "b": ks(0.02)},
    ...                             "prediction": {"score": ks(0.03)}}, Policy())
    >>> [round(out["features"]["a"]["methods"]["ks"]["p_adjusted"], 4),
    ...  round(out["prediction"]["score"]["methods"]["ks"]["p_adjusted"], 4)]
    [0.06, 0.06]
    """
    family = [
        (group, name, method)
        for group, tests in groups.items()
        for name, per in tests.items()
        if not policy.ignored(model, name)
        for method in per
        if method in TESTS
    ]
    raw = np.array([_p(groups[g][n][m]) for g, n, m in family], dtype=np.float64)
    adjusted = dict(zip(family, adjust(raw, policy.correction).tolist(), strict=True))
    return {
        group: {
            name: _verdict(model, name, per, {m: adjusted.get((group, name, m)) for m in per},
                           policy)
            for name, per in tests.items()
        }
        for group, tests in groups.items()
    }  # fmt: skip


def _verdict(
    model: str, name: str, per: dict[str, Measure], adjusted: dict[str, float | None],
    policy: Policy,
) -> dict[str, Any]:  # fmt: skip
    """One feature's figures: its tests decide, the evidence borrows the main test's p."""
    main = next((m for m in ("ks", "chi2") if m in per), None)
    figures: dict[str, Any] = {}
    for method, measure in per.items():
        threshold = policy.threshold(model, name, method)
        p_adj = adjusted[method] if method in TESTS else adjusted.get(main or "")
        p_adj = None if p_adj is None or np.isnan(p_adj) else p_adj
        over = bool(measure.effect >= threshold)
        figures[method] = {
            "statistic": measure.statistic,
            "effect": measure.effect,
            "p_value": measure.p_value,
            "p_adjusted": p_adj,
            "threshold": threshold,
            "role": "test" if method in TESTS else "evidence",
            "over_threshold": over,
            "drifted": method in TESTS and over and p_adj is not None and p_adj < policy.alpha,
        }
    drifted = any(f["drifted"] for f in figures.values())
    for f in figures.values():
        if f["role"] == "evidence":  # agrees with a verdict, never makes one
            f["drifted"] = drifted and f["over_threshold"]
    return {
        "drifted": drifted,
        "flagged_by": [m for m, f in figures.items() if f["role"] == "test" and f["drifted"]],
        "methods": figures,
    }


def _p(measure: Measure) -> float:
    return float("nan") if measure.p_value is None else measure.p_value


def next_streak(streak: dict[str, Any], status: str, index: int, needed: int) -> dict[str, Any]:
    """The alert state of a version after a window with ``status``.

    ``count`` consecutive drifted windows (inconclusive windows neither count nor break a
    streak); ``alert`` goes ``none`` -> ``pending`` when the count reaches ``needed``, and
    to ``sent`` once the webhook took it; a window without drift resets everything.

    >>> s = {}
    >>> for i in range(3):
    ...     s = next_streak(s, "drift", i, needed=2)
    ...     print(s["count"], s["alert"])
    1 none
    2 pending
    3 pending
    >>> next_streak(s, "ok", 3, needed=2)["alert"]
    'none'
    """
    current = {"count": 0, "since": None, "alert": "none", **streak}
    if status == "ok":
        return {"count": 0, "since": None, "alert": "none"}
    if status != "drift":
        return current
    count = current["count"] + 1
    since = current["since"] if current["since"] is not None else index
    alert = current["alert"]
    if alert == "none" and count >= needed:
        alert = "pending"
    return {"count": count, "since": since, "alert": alert}
