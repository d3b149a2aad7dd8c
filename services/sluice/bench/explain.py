"""What one explained row costs: ``core.explain`` over the ONNX model, as ``:explain`` runs it.

Registers three versions into a temporary registry (a diabetes regressor, 10 features;
the churn classifier, 12 features, 4 of them categorical; an imported breast-cancer
pipeline, 30 features), then explains ``--rows`` rows of each with the model server's
defaults (50 background rows, shap's default coalitions) and prints the seconds per row
(median of the rows; the first row, which imports shap, is left out).

    uv run python -m sluice.bench.explain            # writes bench/results/explain.md
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnxruntime as ort
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sluice.bench._common import RESULTS
from sluice.core.explain import Explainer
from sluice.core.registry import ModelRegistry
from sluice.trainer.data import generate_churn
from sluice.trainer.importer import import_model
from sluice.trainer.service import train_and_register

PAGE = RESULTS / "explain.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        registry = ModelRegistry(Path(tmp) / "registry")
        diabetes = load_diabetes(as_frame=True).frame
        churn = generate_churn(3000, seed=1)
        cancer = load_breast_cancer(as_frame=True).frame
        train_and_register(diabetes, model="diabetes", version="hgb", registry=registry,
                           label="target", algorithm="hgb")  # fmt: skip
        train_and_register(churn, model="churn", version="hgb", registry=registry)
        x, y = cancer.drop(columns="target"), cancer["target"]
        pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
        joblib.dump(pipe, Path(tmp) / "cancer.joblib")
        import_model(Path(tmp) / "cancer.joblib", cancer, model="cancer", version="logreg",
                     registry=registry)  # fmt: skip
        lines = ["| version | features | seconds per row (median) | model evaluations per row |",
                 "| --- | --- | --- | --- |"]  # fmt: skip
        for model, version, table in (("diabetes", "hgb", diabetes), ("churn", "hgb", churn),
                                      ("cancer", "logreg", cancer)):  # fmt: skip
            card, profile = registry.card(model, version), registry.profile(model, version)
            path = registry.onnx_path(model, version)
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            output = "value" if card.task == "regression" else "probabilities"
            dtypes = {i.name: np.dtype(np.float64) for i in session.get_inputs()}
            calls = [0]

            def predict(
                feed: dict[str, np.ndarray],
                s: Any = session,
                o: str = output,
                c: list[int] = calls,
            ) -> np.ndarray:
                c[0] += len(next(iter(feed.values())))
                return np.asarray(s.run([o], feed)[0])

            explainer = Explainer(card, profile, predict, dtypes)
            rows = table[[f.name for f in card.features]].head(args.rows + 1)
            records = rows.to_dict("records")
            times = []
            for record in records:
                calls[0] = 0
                started = time.perf_counter()
                explainer.explain([{str(k): v for k, v in record.items()}])
                times.append(time.perf_counter() - started)
            m = len(card.features)
            lines.append(f"| {model}/{version} ({card.task}) | {m} | "
                         f"{statistics.median(times[1:]):.2f} | {calls[0]:,} |")  # fmt: skip
    text = "\n".join(
        [
            "# :explain cost per row",
            "",
            f"`sluice.bench.explain --rows {args.rows}` on {platform.machine()}, "
            f"{platform.python_version()}, a 2-core machine shared with other work; "
            "50 background rows, shap's default coalitions (exact up to 11 features).",
            "",
            *lines,
            "",
        ]
    )
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
