"""The built-in metrics' values, from the routers' traffic tallies (``sluice.core.tally``)
and the drift monitor's analysis answer. Pure.

Every figure comes with the number of samples it rests on, so that too little traffic is
inconclusive instead of a verdict. Latencies are in seconds, rates in 0..1.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sluice.core.tally import BUCKETS_MS, Counts
from sluice.rollout.judge import Arm

TALLY_BUILTINS = frozenset((
    "successRate", "errorRate", "latencyP50", "latencyP99", "latencyMean",
    "shadowAgreement", "shadowScoreDiff", "shadowErrorRate", "scoreShift",
))  # fmt: skip
DRIFT_BUILTINS = frozenset(("featureDrift", "predictionDrift", "accuracy"))


@dataclass(frozen=True, slots=True)
class Figure:
    value: float | None
    samples: int
    note: str = ""


def quantile(q: float, counts: Counts) -> float | None:
    """The ``q`` quantile of the latency histogram in seconds, interpolated linearly inside
    its bucket (as Prometheus' histogram_quantile does); None without samples.

    Ten calls at most 1 ms, ten between 1 and 2 ms: the median is the 1 ms bound and the
    90th percentile 80% of the way through the second bucket.

    >>> quantile(0.5, {"b1": 10, "b2": 10}), quantile(0.9, {"b1": 10, "b2": 10})
    (0.001, 0.0018)
    """
    buckets = [counts.get(f"b{i}", 0.0) for i in range(len(BUCKETS_MS) + 1)]
    total = sum(buckets)
    if total <= 0:
        return None
    rank, seen = q * total, 0.0
    for i, n in enumerate(buckets):
        if n and seen + n >= rank:
            if i == len(BUCKETS_MS):
                return BUCKETS_MS[-1] / 1000  # above the last bound: report the bound
            low = BUCKETS_MS[i - 1] if i else 0.0
            ms = low + (BUCKETS_MS[i] - low) * (rank - seen) / n
            return round(ms / 1000, 9)
        seen += n
    return BUCKETS_MS[-1] / 1000


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def tally_figure(builtin: str, candidate: Counts, stable: Counts) -> Figure:
    """One built-in's value for the candidate over a window.

    >>> c = {"n": 200, "ok": 196, "err": 4, "b1": 196}
    >>> tally_figure("successRate", c, {})
    Figure(value=0.98, samples=200, note='')
    >>> tally_figure("shadowAgreement", {"sh": 50, "sha": 49}, {}).value
    0.98
    """
    n, ok = int(candidate.get("n", 0)), int(candidate.get("ok", 0))
    if builtin == "successRate":
        return Figure(_ratio(n - candidate.get("err", 0), n), n)
    if builtin == "errorRate":
        return Figure(_ratio(candidate.get("err", 0), n), n)
    if builtin in ("latencyP50", "latencyP99"):
        return Figure(quantile(0.5 if builtin == "latencyP50" else 0.99, candidate), ok)
    if builtin == "latencyMean":
        return Figure(_ratio(candidate.get("ms", 0) / 1000, ok), ok)
    shadow = int(candidate.get("sh", 0))
    if builtin == "shadowAgreement":
        return Figure(_ratio(candidate.get("sha", 0), shadow), shadow)
    if builtin == "shadowScoreDiff":
        return Figure(_ratio(candidate.get("shd", 0), shadow), shadow)
    if builtin == "shadowErrorRate":
        tried = shadow + int(candidate.get("shf", 0))
        return Figure(_ratio(candidate.get("shf", 0), tried), tried)
    if builtin == "scoreShift":
        rows_c, rows_s = candidate.get("rows", 0), stable.get("rows", 0)
        if not rows_c or not rows_s:
            return Figure(None, int(min(rows_c, rows_s)), "both versions must answer rows")
        shift = abs(candidate.get("s", 0) / rows_c - stable.get("s", 0) / rows_s)
        return Figure(shift, int(min(rows_c, rows_s)))
    raise ValueError(f"{builtin!r} is not a tally builtin")


def arm(builtin: str, counts: Counts) -> Arm:
    """One version's samples for the sequential comparison of ``builtin``.

    >>> arm("errorRate", {"n": 100, "err": 3})
    Arm(n=100, total=3, squares=3)
    """
    if builtin == "errorRate":
        return Arm.proportion(counts.get("err", 0.0), counts.get("n", 0.0))
    if builtin == "successRate":
        n = counts.get("n", 0.0)
        return Arm.proportion(n - counts.get("err", 0.0), n)
    if builtin == "latencyMean":
        return Arm(counts.get("ok", 0.0), counts.get("ms", 0.0) / 1e3, counts.get("ms2", 0.0) / 1e6)
    raise ValueError(f"{builtin!r} cannot be compared from tallies")


def add(totals: Mapping[str, float], more: Mapping[str, float]) -> dict[str, float]:
    """Counts plus counts.

    >>> add({"n": 1, "err": 1}, {"n": 2})
    {'n': 3, 'err': 1}
    """
    out = dict(totals)
    for name, value in more.items():
        out[name] = out.get(name, 0) + value
    return out


def drift_figure(builtin: str, answer: Mapping[str, Any]) -> Figure:
    """A drift-monitor built-in from its ``/v1/analysis`` answer.

    - featureDrift: the number of features of the candidate's latest window that drifted
      from its training profile (``condition: "== 0"``);
    - predictionDrift: 1 when the candidate's outputs differ from stable's on the same
      traffic, 0 when they agree;
    - accuracy: live accuracy of the candidate from ground-truth feedback.

    >>> drift_figure("predictionDrift", {"conclusive": True, "status": "fail",
    ...     "candidate_rows": 800})
    Figure(value=1.0, samples=800, note='')
    >>> drift_figure("featureDrift", {"candidate_drift_status": "none"}).value is None
    True
    """
    if builtin == "featureDrift":
        status = answer.get("candidate_drift_status")
        rows = int(answer.get("candidate_window_rows") or 0)
        if status in (None, "none", "inconclusive"):
            return Figure(None, rows, f"no conclusive drift window yet ({status})")
        drifted = [f for f in str(answer.get("candidate_drifted_features") or "").split(",") if f]
        return Figure(float(len(drifted)), rows, ",".join(drifted))
    if builtin == "predictionDrift":
        rows = int(answer.get("candidate_rows") or 0)
        if not answer.get("conclusive"):
            return Figure(None, rows, str(answer.get("reason") or "inconclusive"))
        return Figure(1.0 if answer.get("status") == "fail" else 0.0, rows)
    if builtin == "accuracy":
        value = answer.get("candidate_accuracy")
        labelled = int(answer.get("candidate_labelled") or 0)
        return Figure(None if value is None else float(value), labelled)
    raise ValueError(f"{builtin!r} is not a drift builtin")


def accuracy_arm(answer: Mapping[str, Any], role: str) -> Arm:
    """Live accuracy as 0/1 samples (correct or not) of ``role`` (candidate or stable)."""
    n = float(answer.get(f"{role}_labelled") or 0)
    value = answer.get(f"{role}_accuracy")
    correct = round(float(value) * n) if value is not None else 0.0
    return Arm.proportion(correct, n)


def json_path(doc: Any, path: str) -> Any:
    """The value at ``path`` in a JSON document: ``$``, ``$.a.b``, ``$.items[0].value``
    (also Argo's ``{$.a.b}``); None when any part is missing.

    >>> json_path({"data": {"result": [{"value": [1, "0.5"]}]}}, "$.data.result[0].value[1]")
    '0.5'
    >>> json_path({"a": 1}, "{$.b}") is None
    True
    """
    path = path.strip().removeprefix("{").removesuffix("}").strip()
    if not path.startswith("$"):
        raise ValueError(f"jsonPath {path!r} must start with $")
    node = doc
    for part in re.findall(r"\.([^.\[\]]+)|\[(\d+)\]", path[1:]):
        key, index = part
        if key:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        else:
            if not isinstance(node, list) or int(index) >= len(node):
                return None
            node = node[int(index)]
    return node


def number(value: Any) -> float | None:
    """A metric value from JSON: a number, a numeric string, a bool; else None.

    >>> number("0.5"), number(True), number("n/a"), number(None)
    (0.5, 1.0, None, None)
    """
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None
