"""The model server's Prometheus metrics, on a registry passed in (never the global one)."""

from __future__ import annotations

import bisect
import itertools
import threading
from collections.abc import Iterable, Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Gauge, Metric
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from sluice.core.http import HttpMetrics
from sluice.core.metrics import LATENCY_BUCKETS

SERVICE = "model_server"
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))


class Metrics:
    """HTTP request count and latency, inference latency, batch sizes, scores, model info."""

    def __init__(self, registry: CollectorRegistry, model: str, version: str) -> None:
        self.http = HttpMetrics(registry, SERVICE)
        labels = {"model": model, "version": version}
        self.inference_seconds = FastHistogram(
            f"sluice_{SERVICE}_inference_duration_seconds",
            "Time onnxruntime takes for one batch (validation and HTTP not included).",
            labels,
            LATENCY_BUCKETS,
        )
        self.batch_rows = FastHistogram(
            f"sluice_{SERVICE}_batch_size_rows",
            "Rows per onnxruntime call (a gathered batch when batching is on).",
            labels,
            BATCH_BUCKETS,
        )
        self.score = FastHistogram(
            f"sluice_{SERVICE}_prediction_score_ratio",
            "Prediction score per row: the positive-class probability of a binary model, "
            "else the highest class probability.",
            labels,
            SCORE_BUCKETS,
        )
        self.explain_seconds = FastHistogram(
            f"sluice_{SERVICE}_explain_duration_seconds",
            "Time one :explain request spends computing SHAP values (all its rows).",
            labels,
            (*LATENCY_BUCKETS, 10.0, 30.0, 60.0),
        )
        for histogram in (
            self.inference_seconds,
            self.batch_rows,
            self.score,
            self.explain_seconds,
        ):
            registry.register(histogram)
        info = Gauge(
            f"sluice_{SERVICE}_model_info",
            "The model version this server serves (always 1).",
            list(labels),
            registry=registry,
        )
        info.labels(model, version).set(1)

    def observe(self, seconds: float, rows: int, scores: np.ndarray) -> None:
        """Record one inference of ``rows`` rows with the given per-row scores."""
        self.inference_seconds.observe(seconds)
        self.batch_rows.observe(rows)
        self.score.observe_many(scores)


class FastHistogram(Collector):
    """A Prometheus histogram with fixed label values, cheap enough for every request.

    prometheus_client's Histogram walks its buckets in Python on every observe (a few
    microseconds, 50 us for a batch of 32 scores); this one finds the bucket with
    ``bisect`` and counts a large batch with one ``searchsorted``. It exposes the same
    series: ``_bucket{le=...}``, ``_count`` and ``_sum``.
    """

    def __init__(
        self, name: str, documentation: str, labels: dict[str, str], buckets: Sequence[float]
    ) -> None:
        self._name, self._doc, self._labels = name, documentation, labels
        self._bounds = [float(b) for b in buckets]
        self._counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        """Count ``value`` in the first bucket whose bound is >= it."""
        slot = bisect.bisect_left(self._bounds, value)
        with self._lock:
            self._counts[slot] += 1
            self._sum += value

    def observe_many(self, values: np.ndarray) -> None:
        """Count every value of a batch.

        >>> h = FastHistogram("x", "x", {}, [0.5, 1.0])
        >>> h.observe_many(np.array([0.2, 0.5, 0.7, 3.0]))
        >>> h.observe_many(np.linspace(0, 1, 100))
        >>> h._counts
        [52, 51, 1]
        """
        if len(values) <= 16:
            for value in values.tolist():
                self.observe(value)
            return
        slots = np.searchsorted(self._bounds, values, side="left")
        counts = np.bincount(slots, minlength=len(self._counts)).tolist()
        total = float(values.sum())
        with self._lock:
            self._counts = [a + b for a, b in zip(self._counts, counts, strict=True)]
            self._sum += total

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            cumulative = list(itertools.accumulate(self._counts))
            total = self._sum
        bounds = [repr(b) for b in self._bounds] + ["+Inf"]  # as Histogram writes them
        family = HistogramMetricFamily(self._name, self._doc, labels=list(self._labels))
        family.add_metric(
            list(self._labels.values()),
            buckets=list(zip(bounds, cumulative, strict=True)),
            sum_value=total,
        )
        yield family


def scores(probabilities: np.ndarray) -> np.ndarray:
    """Per-row score: p(second class) for two classes, else the highest probability.

    >>> scores(np.array([[0.8, 0.2], [0.3, 0.7]])).tolist()
    [0.2, 0.7]
    >>> scores(np.array([[0.2, 0.5, 0.3]])).tolist()
    [0.5]
    """
    if probabilities.shape[1] == 2:
        return probabilities[:, 1]
    best: np.ndarray = probabilities.max(axis=1)
    return best
