"""Regression, imported models, explanations and batch scoring, served by real processes,
on scikit-learn's bundled data sets."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sluice.core.registry import ModelRegistry
from sluice.trainer.importer import import_model
from sluice.trainer.service import train_and_register
from tests.support.procs import Process, free_port, running, sluice_command

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def diabetes() -> pd.DataFrame:
    return load_diabetes(as_frame=True).frame


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    return load_breast_cancer(as_frame=True).frame


@pytest.fixture(scope="module")
def pipeline(cancer: pd.DataFrame) -> object:
    x, y = cancer.drop(columns="target"), cancer["target"]
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory,
    diabetes: pd.DataFrame,
    cancer: pd.DataFrame,
    pipeline: object,
) -> ModelRegistry:
    folder = tmp_path_factory.mktemp("byo")
    registry = ModelRegistry(folder / "registry")
    train_and_register(
        diabetes, model="diabetes", version="v1", registry=registry, label="target",
        algorithm="hgb", seed=0,
    )  # fmt: skip
    joblib.dump(pipeline, folder / "cancer.joblib")
    import_model(
        folder / "cancer.joblib", cancer, model="cancer", version="v1", registry=registry,
        label="target",
    )  # fmt: skip
    return registry


@contextmanager
def serving(registry: ModelRegistry, model: str, tmp: Path) -> Iterator[Process]:
    port = free_port()
    argv = [*sluice_command(), "serve", "model-server", "--registry", str(registry.root),
            "--model", model, "--version", "v1", "--port", str(port)]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with running(argv, log=tmp / f"{model}.log", ready_url=f"{url}/readyz") as proc:
        proc.url = url
        yield proc


@pytest.fixture(scope="module")
def diabetes_server(
    registry: ModelRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    with serving(registry, "diabetes", tmp_path_factory.mktemp("logs")) as proc:
        yield proc


@pytest.fixture(scope="module")
def cancer_server(
    registry: ModelRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    with serving(registry, "cancer", tmp_path_factory.mktemp("logs")) as proc:
        yield proc


def features(table: pd.DataFrame) -> list[dict[str, float]]:
    rows: list[dict[str, float]] = table.drop(columns="target").to_dict("records")
    return rows


def test_a_regressor_answers_values_over_v1_and_v2(
    diabetes_server: Process, diabetes: pd.DataFrame
) -> None:
    rows = features(diabetes.head(5))
    v1 = httpx.post(f"{diabetes_server.url}/v1/models/diabetes:predict", json={"instances": rows})
    assert v1.status_code == 200, v1.text
    values = [p["value"] for p in v1.json()["predictions"]]
    assert all(25 <= v <= 346 for v in values)  # the target's range
    inputs = [
        {"name": n, "shape": [5, 1], "datatype": "FP64", "data": [r[n] for r in rows]}
        for n in rows[0]
    ]
    v2 = httpx.post(f"{diabetes_server.url}/v2/models/diabetes/infer", json={"inputs": inputs})
    assert v2.status_code == 200, v2.text
    (output,) = v2.json()["outputs"]
    assert (output["name"], output["shape"]) == ("value", [5, 1])
    assert output["data"] == values


def test_an_imported_pipeline_answers_as_scikit_learn(
    cancer_server: Process, cancer: pd.DataFrame, pipeline: object
) -> None:
    rows = features(cancer)
    response = httpx.post(
        f"{cancer_server.url}/v1/models/cancer:predict", json={"instances": rows}, timeout=30
    )
    assert response.status_code == 200, response.text
    served = np.array([p["probabilities"]["1"] for p in response.json()["predictions"]])
    expected = pipeline.predict_proba(cancer.drop(columns="target"))[:, 1]  # type: ignore[attr-defined]
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("model", ["diabetes", "cancer"])
def test_explanations_add_up_to_the_prediction_minus_the_expected_value(
    model: str,
    request: pytest.FixtureRequest,
    diabetes: pd.DataFrame,
    cancer: pd.DataFrame,
    registry: ModelRegistry,
) -> None:
    server: Process = request.getfixturevalue(f"{model}_server")
    table = diabetes if model == "diabetes" else cancer
    rows = features(table.iloc[[3, 40]])
    response = httpx.post(
        f"{server.url}/v1/models/{model}:explain", json={"instances": rows}, timeout=120
    )
    assert response.status_code == 200, response.text
    body = response.json()
    predicted = httpx.post(
        f"{server.url}/v1/models/{model}:predict", json={"instances": rows}
    ).json()["predictions"]
    for explanation, prediction in zip(body["explanations"], predicted, strict=True):
        total = sum(explanation["attributions"].values())
        assert total == pytest.approx(
            explanation["prediction"] - explanation["expected_value"], abs=1e-9
        )
        expected = prediction.get("value", prediction.get("probabilities", {}).get("1"))
        assert explanation["prediction"] == pytest.approx(expected, abs=1e-9)
    card = registry.card(model, "v1")
    assert body["feature_importance"] == card.feature_importance
    assert set(card.feature_importance) == {f.name for f in card.features}


@pytest.mark.parametrize("model", ["diabetes", "cancer"])
def test_batch_scoring_equals_the_online_answers_row_for_row(
    model: str,
    request: pytest.FixtureRequest,
    diabetes: pd.DataFrame,
    cancer: pd.DataFrame,
    registry: ModelRegistry,
    tmp_path: Path,
) -> None:
    server: Process = request.getfixturevalue(f"{model}_server")
    table = diabetes if model == "diabetes" else cancer
    table.to_parquet(tmp_path / "in.parquet")
    done = subprocess.run(
        [*sluice_command(), "score", "--model", model, "--version", "v1",
         "--registry", str(registry.root), "--in", str(tmp_path / "in.parquet"),
         "--out", str(tmp_path / "out.csv"), "--chunk-rows", "100"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"scored {len(table)} rows" in done.stdout
    scored = pd.read_csv(tmp_path / "out.csv")
    assert len(scored) == len(table)
    online = httpx.post(
        f"{server.url}/v1/models/{model}:predict",
        json={"instances": features(table)},
        timeout=30,
    ).json()["predictions"]
    if model == "diabetes":
        np.testing.assert_allclose(scored["prediction"], [p["value"] for p in online], rtol=1e-12)
    else:
        assert scored["predicted_label"].astype(str).tolist() == [p["label"] for p in online]
        np.testing.assert_allclose(
            scored["p_1"], [p["probabilities"]["1"] for p in online], rtol=1e-12
        )


def test_batch_scoring_refuses_a_bad_value_naming_the_row(
    registry: ModelRegistry, diabetes: pd.DataFrame, tmp_path: Path
) -> None:
    table = diabetes.drop(columns="target").copy()
    table.loc[7, "bmi"] = np.nan
    table.to_csv(tmp_path / "in.csv", index=False)
    done = subprocess.run(
        [*sluice_command(), "score", "--model", "diabetes", "--version", "v1",
         "--registry", str(registry.root), "--in", str(tmp_path / "in.csv"),
         "--out", str(tmp_path / "out.csv")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert "input 'bmi': row 7 is missing (null/NaN)" in message
    assert not (tmp_path / "out.csv").exists()
