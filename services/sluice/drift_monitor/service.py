"""The questions the API answers, through the interfaces: the drift report of a model,
the candidate-vs-stable analysis a rollout reads, ground-truth feedback, and the gauges.

Everything here reads the shared state in Redis, so any replica answers for any model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from sluice.drift_monitor.backends import PredictionLog, StateStore
from sluice.drift_monitor.errors import ModelNotWatched
from sluice.drift_monitor.feedback import FeedbackStore
from sluice.drift_monitor.metrics import Metrics
from sluice.drift_monitor.performance import classification, regression
from sluice.drift_monitor.references import RegistryReferences
from sluice.drift_monitor.windows import pair_key

log = logging.getLogger(__name__)

STALE_WINDOWS = 3
"""A comparison older than this many ``window_seconds`` is too old to gate a rollout."""


class DriftService:
    def __init__(
        self,
        *,
        state: StateStore,
        feedback: FeedbackStore,
        prediction_log: PredictionLog,
        references: RegistryReferences,
        metrics: Metrics,
        window_seconds: float,
        history_windows: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state, self.feedback, self.prediction_log = state, feedback, prediction_log
        self.references, self.metrics, self.clock = references, metrics, clock
        self.window_seconds, self.history_windows = window_seconds, history_windows

    async def models(self) -> list[str]:
        return sorted(
            set(self.references.models())
            | set(await self.state.watched())
            | set(await self.prediction_log.streams())
        )

    async def _known(self, model: str) -> None:
        if model not in await self.models():
            raise ModelNotWatched(
                f"model {model!r} is not watched: it has no registered version, no prediction "
                "log and no drift report",
                model=model,
            )

    async def performance(self, model: str, version: str) -> dict[str, Any]:
        triples = await self.feedback.labelled(model, version)
        if self.references.task(model, version) == "regression":
            return regression([t[0] for t in triples], [t[2] for t in triples])
        truth = np.array([t[0] for t in triples], dtype=str)
        predicted = np.array([t[1] for t in triples], dtype=str)
        scores = np.array([t[2] for t in triples], dtype=np.float64)
        classes = self.references.classes(model, version)
        if not classes:
            classes = sorted(set(truth.tolist()) | set(predicted.tolist()))
        return classification(truth, predicted, scores, classes)

    async def drift(self, model: str) -> dict[str, Any]:
        """Every figure of the latest windows of ``model``: per version, per pair, performance."""
        await self._known(model)
        latest = await self.state.latest(model)
        rows = await self.state.rows(model)
        streaks = await self.state.streaks(model)
        versions: dict[str, Any] = {}
        comparisons: dict[str, Any] = {}
        for key, report in sorted(latest.items()):
            history = await self.state.history(model, key, self.history_windows)
            summary = [_summary(r) for r in history]
            entry = {"latest": report, "history": summary, "rows_committed": rows.get(key, 0)}
            if report["kind"] == "comparison":
                comparisons[key] = entry
            else:
                entry["streak"] = streaks.get(key)
                entry["performance"] = await self.performance(model, key)
                versions[key] = entry
        return {
            "model": model,
            "generated_at": self.clock(),
            "versions": versions,
            "comparisons": comparisons,
            "feedback": await self.feedback.counters(model),
        }

    async def analysis(self, model: str, candidate: str, stable: str) -> dict[str, Any]:
        """A flat verdict for a rollout gate: ``status`` is pass, fail or inconclusive."""
        await self._known(model)
        latest = await self.state.latest(model)
        out: dict[str, Any] = {
            "model": model, "candidate": candidate, "stable": stable,
            "status": "inconclusive", "conclusive": False, "reason": "",
        }  # fmt: skip
        out.update(_reference_figures("candidate", latest.get(candidate)))
        out.update(_reference_figures("stable", latest.get(stable)))
        for role, version in (("candidate", candidate), ("stable", stable)):
            perf = await self.performance(model, version)
            out.update({f"{role}_{k}": v for k, v in perf.items() if k != "positive_rate"})
        pair = await self._comparison(model, candidate, stable)
        if pair is None:
            out["reason"] = (
                f"no comparison window of {candidate} and {stable} has closed yet: both must "
                "serve traffic in the same period"
            )
            return out
        out.update(_pair_figures(pair, candidate, stable))
        age = self.clock() - pair["closed_at"]
        out["window_age_seconds"] = age
        if age > STALE_WINDOWS * self.window_seconds:
            out["reason"] = f"the latest comparison window closed {age:.0f}s ago: too old to judge"
            return out
        if pair["status"] == "inconclusive":
            out["reason"] = (
                f"too few rows: {candidate} {out['candidate_rows']}, {stable} "
                f"{out['stable_rows']}, each needs {out['min_rows']}"
            )
            return out
        out["conclusive"] = True
        note = f" (inputs differ too: {out['inputs_differ']})" if out["inputs_differ"] else ""
        if pair["status"] == "differ":
            out["status"] = "fail"
            out["reason"] = f"outputs differ on the same traffic: {out['outputs_differ']}{note}"
        else:
            out["status"] = "pass"
            out["reason"] = f"outputs agree on the same traffic{note}"
        return out

    async def _comparison(self, model: str, a: str, b: str) -> dict[str, Any] | None:
        """The newest conclusive comparison window that is not stale, else the newest one.

        A small window closed by time after traffic thinned out does not hide a verdict
        reached on a full window a moment before.
        """
        if a == b:
            return None
        history = await self.state.history(model, pair_key(a, b), self.history_windows)
        for report in history:
            fresh = self.clock() - report["closed_at"] <= STALE_WINDOWS * self.window_seconds
            if report["status"] != "inconclusive" and fresh:
                return report
        return history[0] if history else None

    async def submit_feedback(
        self, model: str, ids: list[str], labels: list[Any]
    ) -> dict[str, Any]:
        await self._known(model)
        result = await self.feedback.join(model, ids, labels)
        for outcome in ("joined", "duplicate", "unknown"):
            if result[outcome]:
                self.metrics.feedback.labels(model, outcome).inc(result[outcome])
        return {"model": model, **result}

    async def refresh_metrics(self) -> None:
        """Set the gauges from the shared state of every watched model."""
        snapshot: list[tuple[dict[str, Any], int]] = []
        performance: list[tuple[str, str, dict[str, Any]]] = []
        for model in await self.models():
            streaks = await self.state.streaks(model)
            for key, report in (await self.state.latest(model)).items():
                if self.clock() - report["closed_at"] > STALE_WINDOWS * self.window_seconds * 10:
                    continue
                snapshot.append((report, (streaks.get(key) or {}).get("count", 0)))
                if report["kind"] == "reference":
                    performance.append((model, key, await self.performance(model, key)))
        self.metrics.clear()
        for report, streak in snapshot:
            self.metrics.report(report, streak)
        for model, version, figures in performance:
            self.metrics.performance_of(model, version, figures)


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    """One line of a key's window history."""
    out = {k: report.get(k) for k in ("index", "first_id", "last_id", "start", "end", "status")}
    out["rows"] = report["rows"]
    if report["kind"] == "reference":
        out["drifted_features"] = report["drifted_features"]
        out["prediction_drifted"] = bool((report.get("prediction") or {}).get("drifted"))
    else:
        out["outputs_differ"] = report["outputs_differ"]
        out["inputs_differ"] = report["inputs_differ"]
    return out


def _reference_figures(role: str, report: dict[str, Any] | None) -> dict[str, Any]:
    if report is None:
        return {f"{role}_drift_status": "none", f"{role}_drifted_features": "",
                f"{role}_prediction_drifted": False}  # fmt: skip
    return {
        f"{role}_drift_status": report["status"],
        f"{role}_drifted_features": ",".join(report.get("drifted_features", [])),
        f"{role}_prediction_drifted": bool((report.get("prediction") or {}).get("drifted")),
        f"{role}_window_rows": report["rows"],
    }


def _pair_figures(pair: dict[str, Any], candidate: str, stable: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "window_index": pair["index"],
        "window_start": pair["start"],
        "window_end": pair["end"],
        "candidate_rows": pair["rows"].get(candidate, 0),
        "stable_rows": pair["rows"].get(stable, 0),
        "min_rows": pair["min_window_size"],
        "outputs_differ": ",".join(pair["outputs_differ"]),
        "inputs_differ": ",".join(pair["inputs_differ"]),
    }
    for output, figures in pair["outputs"].items():
        for method, m in figures["methods"].items():
            out[f"{output}_{method}"] = m["statistic"]
            out[f"{output}_{method}_p_adjusted"] = m["p_adjusted"]
            out[f"{output}_{method}_differ"] = m["drifted"]
    return out
