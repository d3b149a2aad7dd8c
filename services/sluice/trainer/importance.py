"""The card's global feature importance: mean |SHAP value| over a few held-out rows,
computed against the ONNX model about to be registered (``core.explain``), so it agrees
with what ``:explain`` answers per row."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sluice.core.explain import Explainer, global_importance
from sluice.core.registry import ModelCard, Profile

IMPORTANCE_ROWS = 10
BACKGROUND_ROWS = 20
SAMPLES = 256
"""Coalitions per row: an estimate (mean |SHAP| over 10 rows is one anyway) that keeps the
step to about a second for a 200-tree model; ``:explain`` answers with shap's default."""


def feature_importance(
    card: ModelCard, profile: Profile, onnx_model: bytes, x: pd.DataFrame, seed: int = 0
) -> dict[str, float]:
    """Mean |attribution| per feature over up to ``IMPORTANCE_ROWS`` rows of ``x``."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])
    output = "value" if card.task == "regression" else "probabilities"
    dtypes: dict[str, np.dtype[Any]] = {
        i.name: np.dtype(np.float32 if i.type == "tensor(float)" else np.float64)
        for i in session.get_inputs()
    }

    def predict(feed: dict[str, np.ndarray]) -> np.ndarray:
        (answer,) = session.run([output], feed)
        return np.asarray(answer)

    rows = x.sample(min(IMPORTANCE_ROWS, len(x)), random_state=seed)
    records = [
        {str(k): (None if _missing(v) else v) for k, v in row.items()}
        for row in rows.to_dict("records")
    ]
    return global_importance(
        Explainer(card, profile, predict, dtypes, BACKGROUND_ROWS, SAMPLES).explain(records)
    )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))
