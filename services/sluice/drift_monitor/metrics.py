"""Prometheus metrics of the drift monitor, on a registry passed in.

Gauges mirror the latest committed window of every watched (model, version) as stored in
Redis, so every replica shows the same figures and a lease moving between replicas
leaves no gap. Labels are bounded: features come from the reference profile (never from
traffic), methods and outputs are fixed sets, versions are the ones with a recent window.
Counters are this process's own work.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

P = "sluice_drift_monitor"
PERFORMANCE_FIGURES = (
    "accuracy", "precision", "recall", "f1", "roc_auc", "mae", "rmse", "r2", "mean_error",
)  # fmt: skip


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        fvm = ["model", "version", "feature", "method"]
        self.statistic = Gauge(
            f"{P}_feature_statistic",
            "Latest window: the method's statistic.",
            fvm,
            registry=registry,
        )
        self.p_value = Gauge(
            f"{P}_feature_p_value",
            "Latest window: the method's p-value, corrected across features (NaN: none).",
            fvm, registry=registry,
        )  # fmt: skip
        self.drifted = Gauge(
            f"{P}_feature_drifted",
            "Latest window: 1 if the method flags the feature.",
            fvm,
            registry=registry,
        )
        mv = ["model", "version"]
        self.window_rows = Gauge(
            f"{P}_window_rows", "Rows in the latest closed window.", mv, registry=registry
        )
        self.window_end = Gauge(
            f"{P}_window_end_timestamp_seconds",
            "Record time the latest window ends.",
            mv,
            registry=registry,
        )
        self.inconclusive = Gauge(
            f"{P}_window_inconclusive",
            "1 if the latest window was too small for a verdict.",
            mv,
            registry=registry,
        )
        self.version_drifted = Gauge(
            f"{P}_drifted",
            "1 if the latest window of the version shows drift.",
            mv,
            registry=registry,
        )
        self.streak = Gauge(
            f"{P}_drift_streak_windows", "Consecutive drifted windows.", mv, registry=registry
        )
        pom = ["model", "version", "output", "method"]
        self.prediction = Gauge(
            f"{P}_prediction_statistic",
            "Latest window: drift of the outputs vs the reference.",
            pom,
            registry=registry,
        )
        self.prediction_p = Gauge(
            f"{P}_prediction_p_value",
            "Latest window: p-value of output drift (corrected).",
            pom,
            registry=registry,
        )
        self.prediction_drifted = Gauge(
            f"{P}_prediction_drifted",
            "1 if the outputs drifted from the reference.",
            mv,
            registry=registry,
        )
        self.performance = Gauge(
            f"{P}_performance",
            "Rolling performance on joined ground truth.",
            ["model", "version", "metric"],
            registry=registry,
        )
        self.labelled = Gauge(
            f"{P}_labelled_rows",
            "Joined labels the performance is computed on.",
            mv,
            registry=registry,
        )
        pair = ["model", "version_a", "version_b", "output", "method"]
        self.comparison = Gauge(
            f"{P}_comparison_statistic",
            "Two versions on the same traffic: output difference.",
            pair,
            registry=registry,
        )
        self.comparison_differ = Gauge(
            f"{P}_comparison_differ",
            "1 if two versions' outputs differ on the same traffic, 0 if not, -1 if inconclusive.",
            ["model", "version_a", "version_b"],
            registry=registry,
        )
        self.records = Counter(
            f"{P}_records_total", "Prediction rows read from the log.", ["model"], registry=registry
        )
        self.write_failures = Counter(
            f"{P}_write_failures_total",
            "Failed writes of a closed window (write=window) or of kept predictions "
            "(write=feedback); each is held and retried, nothing after it is acknowledged.",
            ["model", "write"],
            registry=registry,
        )
        self.broken = Counter(
            f"{P}_broken_entries_total",
            "Log entries that were not valid records.",
            ["model"],
            registry=registry,
        )
        self.windows = Counter(
            f"{P}_windows_total",
            "Windows closed and committed.",
            ["model", "kind", "status"],
            registry=registry,
        )
        self.alerts = Counter(
            f"{P}_alerts_total", "Alert webhook calls.", ["model", "outcome"], registry=registry
        )
        self.feedback = Counter(
            f"{P}_feedback_total",
            "Ground-truth labels received.",
            ["model", "outcome"],
            registry=registry,
        )
        self.lag = Gauge(
            f"{P}_lag_seconds",
            "How far reading a model's prediction log is behind its newest entry (seconds "
            "between the last entry read and the newest written; 0 when caught up).",
            ["model"],
            registry=registry,
        )
        self.owned = Gauge(
            f"{P}_owned_models", "Models this replica currently reads.", registry=registry
        )
        self.leases_lost = Counter(
            f"{P}_leases_lost_total",
            "Models this replica lost to another.",
            ["model"],
            registry=registry,
        )
        self._gauges = (
            self.statistic, self.p_value, self.drifted, self.window_rows, self.window_end,
            self.inconclusive, self.version_drifted, self.streak, self.prediction,
            self.prediction_p, self.prediction_drifted, self.performance, self.labelled,
            self.comparison, self.comparison_differ,
        )  # fmt: skip

    def clear(self) -> None:
        """Forget every mirrored series (before setting the current ones again)."""
        for gauge in self._gauges:
            gauge.clear()

    def report(self, report: dict[str, Any], streak: int) -> None:
        """Mirror one committed window report."""
        model = report["model"]
        if report["kind"] == "comparison":
            a, b = report["versions"]
            differ = -1 if report["status"] == "inconclusive" else int(report["status"] == "differ")
            self.comparison_differ.labels(model, a, b).set(differ)
            for output, figures in report["outputs"].items():
                for method, m in figures["methods"].items():
                    self.comparison.labels(model, a, b, output, method).set(m["statistic"])
            return
        version = report["version"]
        self.window_rows.labels(model, version).set(report["rows"])
        self.window_end.labels(model, version).set(report["end"])
        self.inconclusive.labels(model, version).set(int(report["status"] == "inconclusive"))
        self.version_drifted.labels(model, version).set(int(report["status"] == "drift"))
        self.streak.labels(model, version).set(streak)
        for feature, figures in report["features"].items():
            for method, m in figures["methods"].items():
                self.statistic.labels(model, version, feature, method).set(m["statistic"])
                self.p_value.labels(model, version, feature, method).set(_nan(m["p_adjusted"]))
                self.drifted.labels(model, version, feature, method).set(int(m["drifted"]))
        prediction = report.get("prediction")
        if prediction:
            self.prediction_drifted.labels(model, version).set(int(prediction["drifted"]))
            for output, figures in prediction.items():
                if output == "drifted":
                    continue
                for method, m in figures["methods"].items():
                    self.prediction.labels(model, version, output, method).set(m["statistic"])
                    self.prediction_p.labels(model, version, output, method).set(
                        _nan(m["p_adjusted"])
                    )

    def performance_of(self, model: str, version: str, figures: dict[str, Any]) -> None:
        self.labelled.labels(model, version).set(figures["labelled"])
        for name in PERFORMANCE_FIGURES:
            if figures.get(name) is not None:
                self.performance.labels(model, version, name).set(figures[name])


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value
