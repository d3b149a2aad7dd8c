"""`sluice models import`: models a user already has, on scikit-learn's bundled data sets."""

from __future__ import annotations

import pickle
from pathlib import Path

import joblib
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import yaml
from skl2onnx import to_onnx
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from sluice.core.errors import InvalidInput
from sluice.core.registry import ModelRegistry
from sluice.trainer.errors import ParityFailed
from sluice.trainer.importer import import_model
from tests.support.procs import sluice_command

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    return load_breast_cancer(as_frame=True).frame


@pytest.fixture(scope="module")
def diabetes() -> pd.DataFrame:
    table = load_diabetes(as_frame=True, scaled=False).frame
    table["sex"] = table["sex"].map({1.0: "f", 2.0: "m"})
    return table


def onnx_values(registry: ModelRegistry, model: str, version: str, x: pd.DataFrame) -> list:
    sess = ort.InferenceSession(str(registry.onnx_path(model, version)))
    feed = {}
    for i in sess.get_inputs():
        column = x[i.name]
        if i.type == "tensor(string)":
            feed[i.name] = column.astype(str).to_numpy(dtype=object).reshape(-1, 1)
        else:
            dtype = np.float32 if i.type == "tensor(float)" else np.float64
            feed[i.name] = column.to_numpy(dtype=dtype).reshape(-1, 1)
    return sess.run(None, feed)


def test_a_joblib_pipeline_with_text_columns_is_imported_and_answers_as_sklearn(
    diabetes: pd.DataFrame, tmp_path: Path
) -> None:
    x, y = diabetes.drop(columns="target"), diabetes["target"]
    numbers = [c for c in x.columns if c != "sex"]
    prep = ColumnTransformer(
        [("n", StandardScaler(), numbers), ("c", OneHotEncoder(handle_unknown="ignore"), ["sex"])]
    )
    pipeline = make_pipeline(prep, Ridge()).fit(x, y)
    joblib.dump(pipeline, tmp_path / "model.joblib")
    registry = ModelRegistry(tmp_path / "registry")
    card = import_model(
        tmp_path / "model.joblib", diabetes, model="diabetes", version="v1", registry=registry,
        label="target",
    )  # fmt: skip
    assert card.task == "regression"
    assert card.algorithm == "imported Ridge"
    assert [(f.name, f.kind) for f in card.features][-1] == ("s6", "numeric")
    sex = next(f for f in card.features if f.name == "sex")
    assert (sex.kind, sex.categories) == ("categorical", ["f", "m"])
    assert card.metrics["sample_r2"] > 0.4
    (values,) = onnx_values(registry, "diabetes", "v1", x)
    np.testing.assert_allclose(values.ravel(), pipeline.predict(x), rtol=0, atol=1e-9)
    profile = registry.profile("diabetes", "v1")
    assert profile.prediction.score_name == "predicted target"


def test_an_mlflow_folder_is_read_without_mlflow(diabetes: pd.DataFrame, tmp_path: Path) -> None:
    x, y = diabetes.drop(columns=["target", "sex"]), diabetes["target"]
    model = GradientBoostingRegressor(n_estimators=50, random_state=0).fit(x, y)
    folder = tmp_path / "mlflow-model"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(pickle.dumps(model))
    mlmodel = {"flavors": {"python_function": {"loader_module": "mlflow.sklearn"},
                           "sklearn": {"pickled_model": "model.pkl",
                                       "serialization_format": "cloudpickle"}}}  # fmt: skip
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    registry = ModelRegistry(tmp_path / "registry")
    card = import_model(folder, diabetes, model="gb", version="v1", registry=registry)
    assert card.algorithm == "imported GradientBoostingRegressor"
    assert [f.name for f in card.features] == list(x.columns)  # from feature_names_in_
    (values,) = onnx_values(registry, "gb", "v1", x)
    np.testing.assert_allclose(values.ravel(), model.predict(x), rtol=0, atol=1e-9)


def test_an_onnx_file_from_skl2onnx_is_imported(cancer: pd.DataFrame, tmp_path: Path) -> None:
    x, y = cancer.drop(columns="target"), cancer["target"]
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(x.to_numpy(), y)
    onx = to_onnx(forest, x.to_numpy(np.float32)[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    (tmp_path / "forest.onnx").write_bytes(onx.SerializeToString())
    registry = ModelRegistry(tmp_path / "registry")
    card = import_model(
        tmp_path / "forest.onnx", cancer, model="cancer", version="v1", registry=registry,
        label="target",
    )  # fmt: skip
    assert (card.task, card.classes, card.algorithm) == ("classification", ["0", "1"], "onnx")
    label, probabilities = onnx_values(registry, "cancer", "v1", x)
    assert probabilities.dtype == np.float64 and probabilities.shape == (len(x), 2)
    expected = forest.predict_proba(x.to_numpy(np.float32))
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    assert (label == forest.predict(x.to_numpy(np.float32))).all()


def test_a_custom_step_is_refused_naming_it(cancer: pd.DataFrame, tmp_path: Path) -> None:
    x, y = cancer.drop(columns="target"), cancer["target"]
    pipeline = make_pipeline(
        FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression(max_iter=500)
    ).fit(x, y)
    joblib.dump(pipeline, tmp_path / "custom.joblib")
    registry = ModelRegistry(tmp_path / "registry")
    with pytest.raises(InvalidInput) as caught:
        import_model(tmp_path / "custom.joblib", cancer, model="c", version="v1", registry=registry)
    assert "step 'functiontransformer' (FunctionTransformer(func=log1p))" in caught.value.message
    assert "import the .onnx file" in caught.value.message
    assert registry.models() == []


def test_an_onnx_file_that_differs_from_the_original_names_the_worst_row(
    cancer: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = cancer.drop(columns="target"), cancer["target"]
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
    joblib.dump(pipeline, tmp_path / "model.joblib")
    from sluice.trainer import importer

    real = importer.original_answers

    def off_on_row_7(raw: bytes, rows: pd.DataFrame, shaped: object) -> np.ndarray:
        got = real(raw, rows, shaped)  # type: ignore[arg-type]
        got[7] += [0.01, -0.01]
        return got

    monkeypatch.setattr(importer, "original_answers", off_on_row_7)
    registry = ModelRegistry(tmp_path / "registry")
    with pytest.raises(ParityFailed, match=r"on sample row 7 by 0\.01 \(tolerance 1e-05\)"):
        import_model(tmp_path / "model.joblib", cancer, model="c", version="v1", registry=registry)
    assert registry.versions("c") == []


def test_the_cli_warns_about_pickles_and_refuses_what_it_cannot_read(
    cancer: pd.DataFrame, tmp_path: Path
) -> None:
    import subprocess

    x, y = cancer.drop(columns="target"), cancer["target"]
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
    joblib.dump(pipeline, tmp_path / "model.joblib")
    cancer.to_csv(tmp_path / "sample.csv", index=False)
    base = [*sluice_command(), "models", "import", "--registry", str(tmp_path / "registry"),
            "--model", "cancer", "--sample", str(tmp_path / "sample.csv")]  # fmt: skip
    done = subprocess.run(
        [*base, "--version", "v1", "--label", "target", str(tmp_path / "model.joblib")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "runs code stored in the file" in " ".join(done.stderr.split())
    assert "sample_roc_auc" in done.stdout
    (tmp_path / "notes.txt").write_text("hello")
    done = subprocess.run(
        [*base, "--version", "v2", str(tmp_path / "notes.txt")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "import a .joblib, .pkl or .pickle file, an MLflow model folder" in done.stderr
