"""Drift verdicts that stay sane at large N: an effect-size threshold AND a corrected p-value.

A method flags a feature only when its effect size reaches the threshold and its p-value,
corrected across the features of the window (Bonferroni or Benjamini-Hochberg, per
method), is below ``alpha``. Large windows make every p-value tiny; the threshold keeps a
negligible difference from being called drift. Small windows have large effect sizes by
chance; the p-value and the minimum window size keep them from being called drift.

Wasserstein and Jensen-Shannon have no closed-form test: they use the p-value of the test
on the same data (KS and chi-squared).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from sluice.drift_monitor.stats import FloatArray, Measure

Method = Literal["psi", "ks", "wasserstein", "chi2", "jensen_shannon"]
Correction = Literal["bh", "bonferroni", "none"]
NUMERIC_METHODS: tuple[Method, ...] = ("psi", "ks", "wasserstein")
CATEGORICAL_METHODS: tuple[Method, ...] = ("psi", "chi2", "jensen_shannon")
BORROWED_P: dict[str, str] = {"wasserstein": "ks", "jensen_shannon": "chi2"}

DEFAULT_THRESHOLDS: dict[str, float] = {
    "psi": 0.1,
    "ks": 0.1,
    "wasserstein": 0.15,
    "chi2": 0.1,
    "jensen_shannon": 0.1,
}
"""Effect-size thresholds: PSI, KS D, Wasserstein / reference std, Cramér's V, JS distance."""


@dataclass(frozen=True)
class Policy:
    alpha: float = 0.05
    correction: Correction = "bh"
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    overrides: dict[str, dict[str, float]] = field(default_factory=dict)
    """``{"feature": {"psi": 0.2}}`` for every model, or ``{"model/feature": {...}}`` for one."""
    ignore: frozenset[str] = frozenset()
    """Features (``feature`` or ``model/feature``) measured and reported but never flagged."""
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

    Benjamini-Hochberg matches ``scipy.stats.false_discovery_control(p, method="bh")``.

    >>> adjust(np.array([0.01, 0.02, np.nan, 0.5]), "bonferroni").tolist()
    [0.03, 0.06, nan, 1.0]
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
        order = np.argsort(p)
        scaled = p[order] * m / np.arange(1, m + 1)
        monotone = np.minimum.accumulate(scaled[::-1])[::-1]
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(monotone, 1.0)
        out[mask] = adjusted
    return out


def decide(
    model: str, measures: dict[str, dict[str, Measure]], policy: Policy
) -> dict[str, dict[str, Any]]:
    """Per feature: each method's figures and verdict, and whether the feature drifted.

    >>> big = Measure(0.3, 0.3, 1e-9)
    >>> out = decide("m", {"a": {"ks": big}, "b": {"ks": Measure(0.3, 0.3, 0.2)}}, Policy())
    >>> out["a"]["drifted"], out["b"]["drifted"]  # b: a large effect but not significant
    (True, False)
    """
    features = list(measures)
    adjusted: dict[str, dict[str, float]] = {f: {} for f in features}
    methods = {m for per in measures.values() for m in per}
    for method in methods:
        raw = np.array(
            [_p(measures[f].get(method)) for f in features if method in measures[f]],
            dtype=np.float64,
        )
        for f, p in zip(
            [f for f in features if method in measures[f]],
            adjust(raw, policy.correction),
            strict=True,
        ):
            adjusted[f][method] = float(p)
    out: dict[str, dict[str, Any]] = {}
    for f in features:
        figures: dict[str, Any] = {}
        for method, measure in measures[f].items():
            p_adj = adjusted[f].get(BORROWED_P.get(method, method), float("nan"))
            threshold = policy.threshold(model, f, method)
            drifted = (
                not policy.ignored(model, f)
                and measure.effect >= threshold
                and not np.isnan(p_adj)
                and p_adj < policy.alpha
            )
            figures[method] = {
                "statistic": measure.statistic,
                "effect": measure.effect,
                "p_value": measure.p_value,
                "p_adjusted": None if np.isnan(p_adj) else p_adj,
                "threshold": threshold,
                "drifted": bool(drifted),
            }
        out[f] = {
            "drifted": any(m["drifted"] for m in figures.values()),
            "methods": figures,
        }
    return out


def _p(measure: Measure | None) -> float:
    if measure is None or measure.p_value is None:
        return float("nan")
    return measure.p_value


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
