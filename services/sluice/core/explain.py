"""Per-feature attributions (SHAP values) of a registered version's answers, computed
against its ONNX model, with the background drawn from its training profile.

Used by the model server (``:explain``) and by the trainer and the import (the card's
global feature importance), so both give the same figures.

How: shap's ``KernelExplainer`` over a function that runs the model on a matrix of
coded rows: numeric features as themselves, categorical features as an index into
their categories (the profile's, then any new ones in the rows explained). The
background is ``BACKGROUND_ROWS`` rows, each feature drawn independently from its
profile (the profile keeps per-feature samples, not whole rows; Kernel SHAP treats the
features as independent anyway), with a fixed seed, so the same version always explains
the same row the same way.

What is explained (one number per row):

- a regressor: the predicted value;
- a binary classifier: the probability of the positive (second) class;
- a multi-class classifier: the probability of the class it predicted for that row.

SHAP's own property holds for every row: the attributions add up to the explained
number minus ``expected_value`` (the mean of that number over the background).

Cost: with M features and B background rows, one row costs about
``min(2**M, 2*M + 2048) * B`` model evaluations, in batches (docs/models.md has figures).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sluice.core.errors import SluiceError
from sluice.core.registry import CategoricalProfile, FeatureSpec, ModelCard, Profile

BACKGROUND_ROWS = 50
SEED = 0

Predict = Callable[[dict[str, np.ndarray]], np.ndarray]
"""Feed of ``[N, 1]`` arrays by feature -> ``[N]`` values or ``[N, n_classes]`` probabilities."""


@dataclass(frozen=True)
class RowExplanation:
    explained: float
    """The number explained (see the module): a value or a probability."""
    output: str
    """What it is, e.g. ``value``, ``p(churned=1)``."""
    expected_value: float
    attributions: dict[str, float]

    def as_json(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "prediction": self.explained,
            "expected_value": self.expected_value,
            "attributions": self.attributions,
        }


class ExplainNotInstalled(SluiceError):
    """shap is not installed here (the serving image leaves it out unless asked)."""

    status = 501
    code = "explain_not_installed"


class ExplainTimeout(Exception):
    """The deadline passed after ``done`` of the rows."""

    def __init__(self, done: int) -> None:
        super().__init__(done)
        self.done = done


class Explainer:
    """Explains rows of one version; build once, reuse (the background is fixed)."""

    def __init__(
        self,
        card: ModelCard,
        profile: Profile,
        predict: Predict,
        dtypes: Mapping[str, np.dtype[Any]],
        background_rows: int = BACKGROUND_ROWS,
        samples: int | None = None,
    ) -> None:
        """``samples``: coalitions evaluated per row (None: shap's default, ``2*M + 2048``;
        exact Shapley values up to M = 11 features); fewer is faster and approximate, and
        the attributions still add up to the prediction minus the expected value."""
        self.card, self.predict, self.dtypes = card, predict, dtypes
        self.samples = samples
        self.features: list[FeatureSpec] = list(card.features)
        profiles = {p.name: p for p in profile.features}
        self.categories: dict[str, list[str]] = {}
        rng = np.random.default_rng(SEED)
        columns = []
        for spec in self.features:
            p = profiles.get(spec.name)
            if spec.kind == "categorical":
                freq = p.frequencies if isinstance(p, CategoricalProfile) else {}
                names = list(freq) or list(spec.categories or []) or [str(spec.default or "")]
                self.categories[spec.name] = names
                weights = np.array([freq.get(n, 1) for n in names], dtype=np.float64)
                codes = rng.choice(len(names), size=background_rows, p=weights / weights.sum())
                columns.append(codes.astype(np.float64))
            else:
                sample = np.asarray(getattr(p, "sample", []) or [spec.default or 0.0], dtype=float)
                columns.append(rng.choice(sample, size=background_rows))
        self.background = np.column_stack(columns)

    def explain(
        self, rows: Sequence[Mapping[str, Any]], deadline: float | None = None
    ) -> list[RowExplanation]:
        """One explanation per row (``{feature: value}``, as the model takes them).

        Raises ExplainTimeout when ``deadline`` (``time.monotonic()``) passes between rows.
        """
        try:
            import shap
        except ImportError:
            raise ExplainNotInstalled(
                "explanations need the 'explain' extra (shap), which this installation lacks: "
                "pip install 'sluice[explain]', or build the serving image with "
                "--build-arg EXTRAS=explain"
            ) from None

        coded = np.array([self._encode(row) for row in rows], dtype=np.float64)
        out = []
        for i, row in enumerate(coded):
            if deadline is not None and time.monotonic() > deadline:
                raise ExplainTimeout(i)
            target, name = self._target(row)
            explainer = shap.KernelExplainer(
                lambda z, t=target: self._score(z, t), self.background, silent=True
            )
            options: dict[str, Any] = {"silent": True}
            if self.samples is not None:
                options["nsamples"] = self.samples
            values = np.asarray(explainer.shap_values(row.reshape(1, -1), **options))
            explained = float(self._score(row.reshape(1, -1), target)[0])
            out.append(
                RowExplanation(
                    explained=explained,
                    output=name,
                    expected_value=float(np.ravel(explainer.expected_value)[0]),
                    attributions={
                        s.name: float(v)
                        for s, v in zip(self.features, values.reshape(-1), strict=True)
                    },
                )
            )
        return out

    def _encode(self, row: Mapping[str, Any]) -> list[float]:
        coded = []
        for spec in self.features:
            value = row[spec.name]
            if spec.kind == "categorical":
                text = str(spec.default if value is None else value)
                names = self.categories[spec.name]
                if text not in names:
                    names.append(text)
                coded.append(float(names.index(text)))
            else:
                coded.append(np.nan if value is None else float(value))
        return coded

    def _feed(self, z: np.ndarray) -> dict[str, np.ndarray]:
        feed = {}
        for k, spec in enumerate(self.features):
            column = z[:, k]
            if spec.kind == "categorical":
                names = np.asarray(self.categories[spec.name], dtype=object)
                feed[spec.name] = names[column.astype(np.int64)].reshape(-1, 1)
            else:
                feed[spec.name] = column.astype(self.dtypes[spec.name]).reshape(-1, 1)
        return feed

    def _target(self, row: np.ndarray) -> tuple[int | None, str]:
        """Which output column to explain for this row, and its name."""
        if self.card.task == "regression":
            return None, "value"
        classes = self.card.classes
        if len(classes) == 2:
            return 1, f"p({self.card.label}={classes[1]})"
        probabilities = np.asarray(self.predict(self._feed(row.reshape(1, -1))))
        best = int(np.argmax(probabilities[0]))
        return best, f"p({self.card.label}={classes[best]})"

    def _score(self, z: np.ndarray, target: int | None) -> np.ndarray:
        answer = np.asarray(self.predict(self._feed(z)), dtype=np.float64)
        return answer.reshape(-1) if target is None else answer[:, target]


def global_importance(explanations: Sequence[RowExplanation]) -> dict[str, float]:
    """Mean |attribution| per feature, largest first.

    >>> rows = [RowExplanation(1.0, "value", 0.0, {"a": 2.0, "b": -1.0}),
    ...         RowExplanation(0.0, "value", 0.0, {"a": 0.0, "b": 3.0})]
    >>> global_importance(rows)
    {'b': 2.0, 'a': 1.0}
    """
    if not explanations:
        return {}
    names = list(explanations[0].attributions)
    means = {n: float(np.mean([abs(e.attributions[n]) for e in explanations])) for n in names}
    return dict(sorted(means.items(), key=lambda kv: (-kv[1], kv[0])))
