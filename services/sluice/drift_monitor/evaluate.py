"""A closed window -> its report: every figure of every feature, method and verdict.

Two kinds of report. ``reference``: one version's window against that version's training
profile (inputs and predictions). ``comparison``: two versions' rows from the same
stretch of the log against each other (outputs, and inputs to tell whether the two saw
the same traffic). Reports are plain JSON-ready dicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sluice.core.registry import CategoricalProfile, NumericProfile, Profile
from sluice.drift_monitor.batch import Kind, ObjectArray
from sluice.drift_monitor.stats import (
    FloatArray,
    IntArray,
    Measure,
    bin_counts,
    category_counts,
    chi2_test,
    jensen_shannon,
    ks_and_wasserstein,
    psi_test,
    quantile_edges,
)
from sluice.drift_monitor.verdict import Policy, decide, decide_together
from sluice.drift_monitor.windows import ClosedWindow, SideData

UNSEEN_SHOWN = 10
"""Most unseen category values named in a report (the bucket counts them all)."""


@dataclass(frozen=True)
class NumericRef:
    edges: FloatArray
    counts: IntArray
    missing: int
    sample: FloatArray
    """Sorted."""
    std: float


@dataclass(frozen=True)
class CategoricalRef:
    categories: list[str]
    counts: IntArray
    """Per category, then missing, then unseen (always 0 in the reference)."""


@dataclass(frozen=True)
class Reference:
    features: dict[str, NumericRef | CategoricalRef]
    score: NumericRef
    labels: CategoricalRef

    @property
    def kinds(self) -> dict[str, Kind]:
        return {
            n: "numeric" if isinstance(r, NumericRef) else "categorical"
            for n, r in self.features.items()
        }


def prepare(profile: Profile) -> Reference:
    """Arrays for a profile, built once per version."""
    features: dict[str, NumericRef | CategoricalRef] = {}
    for f in profile.features:
        features[f.name] = _numeric(f) if isinstance(f, NumericProfile) else _categorical(f)
    p = profile.prediction
    sample = np.sort(np.asarray(p.sample, dtype=np.float64))
    score = NumericRef(
        np.asarray(p.bins.edges, dtype=np.float64), np.asarray(p.bins.counts, dtype=np.int64),
        0, sample, float(sample.std()) if sample.size else 1.0,
    )  # fmt: skip
    return Reference(features, score, _predicted_labels(list(p.label_frequencies), sample))


def _predicted_labels(classes: list[str], scores: FloatArray) -> CategoricalRef:
    """The reference of predicted labels, from the held-out scores.

    The profile counts true classes; a classifier predicts another mix (fewer of a rare
    class), so for a binary model the reference is the labels its held-out scores give:
    the second class when its probability is over one half. Other models: no reference.

    >>> _predicted_labels(["0", "1"], np.array([0.2, 0.4, 0.7])).counts.tolist()
    [2, 1, 0, 0]
    """
    if len(classes) != 2:
        return CategoricalRef([], np.zeros(2, dtype=np.int64))
    positive = int(np.count_nonzero(scores > 0.5))
    counts = [scores.size - positive, positive, 0, 0]
    return CategoricalRef(classes, np.array(counts, dtype=np.int64))


def _numeric(f: NumericProfile) -> NumericRef:
    return NumericRef(
        edges=np.asarray(f.bins.edges, dtype=np.float64),
        counts=np.asarray(f.bins.counts, dtype=np.int64),
        missing=f.missing,
        sample=np.sort(np.asarray(f.sample, dtype=np.float64)),
        std=f.std,
    )


def _categorical(f: CategoricalProfile) -> CategoricalRef:
    names = sorted(f.frequencies)
    counts = [f.frequencies[c] for c in names]
    return CategoricalRef(names, np.array([*counts, f.missing, 0], dtype=np.int64))


def numeric_measures(
    ref: NumericRef, values: FloatArray
) -> tuple[dict[str, Measure], dict[str, Any]]:
    """Tests: KS on the values, the missing share when a side has any; evidence: PSI on the
    reference's bins (plus a missing bin) and Wasserstein."""
    finite = values[np.isfinite(values)]
    missing = int(values.size - finite.size)
    current = np.append(bin_counts(ref.edges, finite), missing)
    measures: dict[str, Measure] = {}
    if finite.size and ref.sample.size:
        measures["ks"], measures["wasserstein"] = ks_and_wasserstein(
            ref.sample, finite, scale=ref.std
        )
    measures.update(missing_test(int(ref.counts.sum()), ref.missing, finite.size, missing))
    measures["psi"] = psi_test(np.append(ref.counts, ref.missing), current)
    return measures, {"kind": "numeric", "rows": int(values.size), "missing": missing}


def missing_test(
    ref_present: int, ref_missing: int, present: int, missing: int
) -> dict[str, Measure]:
    """``{"missing": chi-squared of the 2 x 2 table}`` (effect: phi), or ``{}`` when no side
    has a missing value: nothing to test.

    >>> m = missing_test(990, 10, 900, 100)["missing"]  # 1% missing -> 10%
    >>> round(m.effect, 3), m.p_value < 1e-15
    (0.197, True)
    >>> missing_test(1000, 0, 500, 0)
    {}
    """
    if ref_missing == 0 and missing == 0:
        return {}
    reference, current = np.array([ref_present, ref_missing]), np.array([present, missing])
    return {"missing": chi2_test(reference, current)}


def categorical_measures(
    ref: CategoricalRef, values: ObjectArray
) -> tuple[dict[str, Measure], dict[str, Any]]:
    """Test: chi-squared on category counts (unseen values in their own bucket); evidence: PSI
    and Jensen-Shannon."""
    current, unseen = category_counts(values, ref.categories)
    measures = {
        "chi2": chi2_test(ref.counts, current),
        "psi": psi_test(ref.counts, current),
        "jensen_shannon": jensen_shannon(ref.counts, current),
    }
    shown = dict(sorted(unseen.items(), key=lambda kv: -kv[1])[:UNSEEN_SHOWN])
    extras = {
        "kind": "categorical",
        "rows": int(values.size),
        "missing": int(current[-2]),
        "unseen": int(current[-1]),
        "unseen_values": shown,
    }
    return measures, extras


def _window_fields(window: ClosedWindow, closed_at: float) -> dict[str, Any]:
    return {
        "index": window.index,
        "first_id": window.first_id,
        "last_id": window.last_id,
        "start": window.start_ts,
        "end": window.end_ts,
        "closed_at": closed_at,
    }


def _merge(
    verdicts: dict[str, dict[str, Any]], extras: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    return {name: {**extras[name], **verdicts[name]} for name in verdicts}


def evaluate_version(
    model: str, window: ClosedWindow, ref: Reference | None, policy: Policy, closed_at: float
) -> dict[str, Any]:
    """The report of one version's window against its training profile."""
    side = window.sides[0]
    report: dict[str, Any] = {
        "kind": "reference",
        "model": model,
        "version": side.version,
        "rows": side.rows,
        "rows_measured": int(side.scores.size),
        "min_window_size": policy.min_window_size,
        **_window_fields(window, closed_at),
        "features": {},
        "drifted_features": [],
        "prediction": None,
    }
    if ref is None:
        return {**report, "status": "no_reference"}
    measures: dict[str, dict[str, Measure]] = {}
    extras: dict[str, dict[str, Any]] = {}
    for name, r in ref.features.items():
        column = side.columns.get(name)
        if column is None:
            column = np.full(side.scores.size, None if isinstance(r, CategoricalRef) else np.nan)
        if isinstance(r, NumericRef):
            measures[name], extras[name] = numeric_measures(r, column.astype(np.float64))
        else:
            measures[name], extras[name] = categorical_measures(r, column.astype(object))
    outputs, output_extras = _prediction_measures(ref, side)
    verdicts = decide_together(model, {"features": measures, "prediction": outputs}, policy)
    features = _merge(verdicts["features"], extras)
    prediction: dict[str, Any] = _merge(verdicts["prediction"], output_extras)
    conclusive = side.rows >= policy.min_window_size
    drifted = [n for n, f in features.items() if f["drifted"]] if conclusive else []
    prediction["drifted"] = conclusive and any(v["drifted"] for v in prediction.values())
    if not conclusive:
        status = "inconclusive"
    else:
        status = "drift" if drifted or prediction["drifted"] else "ok"
    return {
        **report,
        "status": status,
        "features": features,
        "drifted_features": drifted,
        "prediction": prediction,
    }


def _prediction_measures(
    ref: Reference, side: SideData
) -> tuple[dict[str, dict[str, Measure]], dict[str, dict[str, Any]]]:
    measures, extras = {}, {}
    measures["score"], extras["score"] = numeric_measures(ref.score, side.scores)
    if ref.labels.categories:
        measures["label"], extras["label"] = categorical_measures(ref.labels, side.labels)
    return measures, extras


def evaluate_pair(
    model: str, window: ClosedWindow, kinds: dict[str, Kind], policy: Policy, closed_at: float
) -> dict[str, Any]:
    """Two versions on the same stretch of traffic: do their outputs (and inputs) differ?"""
    a, b = window.sides
    outputs = _merge(
        decide(model, {"score": _pair_numeric(a.scores, b.scores),
                       "label": _pair_categorical(a.labels, b.labels)}, policy),
        {"score": {"kind": "numeric"}, "label": {"kind": "categorical"}},
    )  # fmt: skip
    measures: dict[str, dict[str, Measure]] = {}
    for name, kind in kinds.items():
        if name in a.columns and name in b.columns:
            pair = _pair_numeric if kind == "numeric" else _pair_categorical
            measures[name] = pair(a.columns[name], b.columns[name])
    inputs = decide(model, measures, policy)
    conclusive = min(a.rows, b.rows) >= policy.min_window_size
    differ = [n for n, f in outputs.items() if f["drifted"]] if conclusive else []
    inputs_differ = [n for n, f in inputs.items() if f["drifted"]] if conclusive else []
    status = "inconclusive" if not conclusive else "differ" if differ else "same"
    return {
        "kind": "comparison",
        "model": model,
        "versions": [a.version, b.version],
        "rows": {a.version: a.rows, b.version: b.rows},
        "min_window_size": policy.min_window_size,
        **_window_fields(window, closed_at),
        "status": status,
        "outputs": outputs,
        "outputs_differ": differ,
        "inputs": inputs,
        "inputs_differ": inputs_differ,
    }


def _pair_numeric(a: np.ndarray, b: np.ndarray) -> dict[str, Measure]:
    a, b = a.astype(np.float64), b.astype(np.float64)
    fa, fb = a[np.isfinite(a)], b[np.isfinite(b)]
    both = np.concatenate([fa, fb])
    edges = quantile_edges(both)
    counts_a = np.append(bin_counts(edges, fa), a.size - fa.size)
    counts_b = np.append(bin_counts(edges, fb), b.size - fb.size)
    measures: dict[str, Measure] = {}
    if fa.size and fb.size:
        measures["ks"], measures["wasserstein"] = ks_and_wasserstein(
            fa, fb, scale=float(both.std()) or 1.0
        )
    measures.update(missing_test(fa.size, a.size - fa.size, fb.size, b.size - fb.size))
    measures["psi"] = psi_test(counts_a, counts_b)
    return measures


def _pair_categorical(a: np.ndarray, b: np.ndarray) -> dict[str, Measure]:
    a, b = a.astype(object), b.astype(object)
    present = np.concatenate([a[~pd.isna(a)], b[~pd.isna(b)]]).astype(str)
    names = np.unique(present).tolist()
    counts_a, _ = category_counts(a, names)
    counts_b, _ = category_counts(b, names)
    return {
        "chi2": chi2_test(counts_a, counts_b),
        "psi": psi_test(counts_a, counts_b),
        "jensen_shannon": jensen_shannon(counts_a, counts_b),
    }
