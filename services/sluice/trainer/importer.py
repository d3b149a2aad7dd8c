"""Register a model someone already has: ``sluice models import``.

Sources:

- a fitted scikit-learn estimator or pipeline in a joblib or pickle file (``.joblib``,
  ``.pkl``, ``.pickle``). Loading one runs code from the file: import only files you trust;
- an MLflow model folder with the ``sklearn`` flavour: its ``MLmodel`` file names the
  pickled model, which is loaded as above (no MLflow server or package needed);
- an ONNX file (``.onnx``), reshaped by ``onnx_import``.

Plus a sample of the training data (a table with every feature column; the label column,
when given, scores the model on the sample). The import converts the model to ONNX where
needed, refuses it unless ONNX reproduces the original on every sample row (naming the
worst row), infers the input schema from the sample, profiles the sample for drift and
registers the same card and profile as the trainer.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pandas.api import types

from sluice.core.errors import InvalidInput
from sluice.core.registry import DataInfo, ModelCard, ModelRegistry
from sluice.trainer import card as cards
from sluice.trainer.errors import ParityFailed
from sluice.trainer.export import PARITY_TOLERANCE, to_onnx, worst_row
from sluice.trainer.importance import IMPORTANCE_ROWS, feature_importance
from sluice.trainer.onnx_import import Reshaped, original_answers, reshape
from sluice.trainer.pipeline import evaluate, evaluate_regression
from sluice.trainer.profile import build_profile
from sluice.trainer.progress import QuietSteps, Steps
from sluice.trainer.schema import Column, Task, label_values, target_values
from sluice.trainer.tables import fingerprint
from sluice.trainer.versions import ensure_new_version

log = logging.getLogger(__name__)

PICKLE_WARNING = (
    "warning: loading {path} runs code stored in the file (pickle); import only files you trust"
)
PICKLES = (".joblib", ".pkl", ".pickle")


def import_model(
    source: Path,
    sample: pd.DataFrame,
    *,
    model: str,
    version: str,
    registry: ModelRegistry,
    label: str | None = None,
    seed: int = 0,
    steps: Steps | None = None,
) -> ModelCard:
    """Convert, check, profile and register ``source`` as model/version (see the module)."""
    steps = steps or QuietSteps()
    ensure_new_version(registry, model, version)
    if label is not None and label not in sample.columns:
        raise InvalidInput(f"the sample has no label column {label!r}")
    if len(sample) == 0:
        raise InvalidInput("the sample has no rows")
    if source.suffix.lower() == ".onnx":
        raw = _read(source)
        columns = feature_columns(sample, [c for c in sample.columns if c != label])
        x = sample[[c.name for c in columns]]
        with steps.step("reshape the ONNX graph"):
            shaped = reshape(raw, columns)
        with steps.step(f"check parity on {len(x):,} sample rows"):
            expected = original_answers(raw, x, shaped)
            got = original_answers(shaped.onnx_model, x, shaped)
        algorithm, params = "onnx", {"file": source.name}
    else:
        estimator = load_estimator(source, steps)
        names = [str(n) for n in getattr(estimator, "feature_names_in_", [])]
        names = names or [c for c in sample.columns if c != label]
        missing = [n for n in names if n not in sample.columns]
        if missing:
            raise InvalidInput(f"the sample lacks the model's feature columns {missing}")
        columns = feature_columns(sample, names)
        x = sample[names]
        task = _task_of(estimator)
        with steps.step("export to ONNX"):
            onnx_model = convert(estimator, columns, task)
        classes = list(estimator.classes_) if task == "classification" else []
        shaped = Reshaped(onnx_model, task, classes)
        with steps.step(f"check parity on {len(x):,} sample rows"):
            expected = _sklearn_answers(estimator, x, task)
            got = original_answers(onnx_model, x, shaped)
        final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
        algorithm, params = f"imported {type(final).__name__}", _params(final)
    diff = check_sample_parity(got, expected, shaped.task)
    return _register(
        shaped, columns, sample, x, expected, label=label, model=model, version=version,
        registry=registry, algorithm=algorithm, params=params, seed=seed, source=str(source),
        diff=diff, steps=steps,
    )  # fmt: skip


def load_estimator(source: Path, steps: Steps) -> Any:
    """The estimator in a joblib/pickle file or an MLflow sklearn folder."""
    if source.is_dir():
        source = _mlflow_model_file(source)
    if source.suffix.lower() not in PICKLES:
        raise InvalidInput(
            f"{source}: import a .joblib, .pkl or .pickle file, an MLflow model folder or an "
            ".onnx file"
        )
    steps.note(PICKLE_WARNING.format(path=source))
    data = _read(source)
    try:
        if source.suffix.lower() == ".joblib":
            import joblib

            return joblib.load(source)
        return pickle.loads(data)
    except Exception as exc:
        raise InvalidInput(
            f"{source}: cannot load the model: {type(exc).__name__}: {exc}"
        ) from None


def _mlflow_model_file(folder: Path) -> Path:
    spec = folder / "MLmodel"
    if not spec.is_file():
        raise InvalidInput(f"{folder} is a folder without an MLmodel file: not an MLflow model")
    try:
        doc = yaml.safe_load(spec.read_text())
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{spec}: not YAML: {exc}") from None
    flavors = (doc or {}).get("flavors") or {}
    sklearn = flavors.get("sklearn")
    if not isinstance(sklearn, dict):
        raise InvalidInput(
            f"{spec}: Sluice reads MLflow models with the sklearn flavour; this one has "
            f"{', '.join(flavors) or 'none'} (export it to ONNX and import the .onnx file)"
        )
    file = folder / str(sklearn.get("pickled_model", "model.pkl"))
    if file.suffix.lower() not in PICKLES:
        file = file.with_suffix(".pkl") if not file.suffix else file
    return file


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read it: {exc.strerror or exc}") from None


def feature_columns(sample: pd.DataFrame, names: list[str]) -> list[Column]:
    """Each named sample column as a feature: numbers (and bools) numeric, text categorical."""
    out = []
    for name in names:
        values = sample[name]
        if types.is_bool_dtype(values):
            out.append(Column(name, "numeric", "bool"))
        elif types.is_integer_dtype(values):
            out.append(Column(name, "numeric", "int64"))
        elif types.is_float_dtype(values):
            out.append(Column(name, "numeric", "float64"))
        elif types.is_string_dtype(values) or types.is_object_dtype(values):
            out.append(Column(name, "categorical", "string"))
        else:
            raise InvalidInput(f"sample column {name!r} has type {values.dtype}: not a feature")
    return out


def _task_of(estimator: Any) -> Task:
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(estimator) and hasattr(estimator, "predict_proba"):
        return "classification"
    if is_regressor(estimator):
        return "regression"
    raise InvalidInput(
        f"{type(estimator).__name__} is neither a classifier with predict_proba nor a "
        "regressor: Sluice serves those two"
    )


def convert(estimator: Any, columns: list[Column], task: Task) -> bytes:
    """``to_onnx``, with a refusal naming the step skl2onnx cannot convert."""
    from sluice.trainer.unsupported import unsupported_step

    where = unsupported_step(estimator)
    if where is not None:
        raise InvalidInput(
            f"cannot convert step {where} to ONNX: skl2onnx has no converter for it. Replace "
            "it with a scikit-learn transformer skl2onnx converts, or convert the model to "
            "ONNX yourself and import the .onnx file"
        )
    try:
        return to_onnx(estimator, columns, task)
    except InvalidInput:
        raise
    except Exception as exc:
        raise InvalidInput(
            f"skl2onnx could not convert the model: {type(exc).__name__}: {exc}"
        ) from None


def _sklearn_answers(estimator: Any, x: pd.DataFrame, task: Task) -> np.ndarray:
    if task == "classification":
        return np.asarray(estimator.predict_proba(x), dtype=np.float64)
    return np.asarray(estimator.predict(x), dtype=np.float64).reshape(-1)


def check_sample_parity(got: np.ndarray, expected: np.ndarray, task: Task) -> float:
    """The largest difference; ParityFailed naming the worst row when over the tolerance."""
    row, diff = worst_row(got, expected)
    if not diff <= PARITY_TOLERANCE:
        what = "probabilities" if task == "classification" else "value"
        raise ParityFailed(
            f"ONNX differs from the original on sample row {row} by {diff:.3g} (tolerance "
            f"{PARITY_TOLERANCE:g}): {what} {np.round(expected[row], 6).tolist()} from the "
            f"original, {np.round(got[row], 6).tolist()} from ONNX; the version was not "
            "registered"
        )
    return diff


def _params(final: Any) -> dict[str, Any]:
    try:
        params = final.get_params()
    except Exception:
        return {}
    return {k: v if v is None or isinstance(v, bool | int | float | str) else str(v)
            for k, v in sorted(params.items())}  # fmt: skip


def _register(
    shaped: Reshaped, columns: list[Column], sample: pd.DataFrame, x: pd.DataFrame,
    answers: np.ndarray, *, label: str | None, model: str, version: str,
    registry: ModelRegistry, algorithm: str, params: dict[str, Any], seed: int, source: str,
    diff: float, steps: Steps,
) -> ModelCard:  # fmt: skip
    names = [str(c) for c in shaped.classes]
    regression = shaped.task == "regression"
    metrics: dict[str, float] = {}
    if regression:
        truth = target_values(sample[label]) if label else pd.Series(answers)
        if label:
            metrics = evaluate_regression(truth, answers)
    else:
        predicted = pd.Series(np.asarray(names, dtype=object)[answers.argmax(axis=1)])
        truth = label_values(sample[label]).astype(str) if label else predicted
        if label:
            metrics = evaluate(truth.reset_index(drop=True), answers, names)
    with steps.step("profile the sample"):
        frame = pd.DataFrame({c.name: _profile_column(x[c.name], c) for c in columns})
        profile = build_profile(frame, columns, answers, truth, names, label or "prediction", seed)
    card = ModelCard(
        model=model, version=version, created_at=cards.utc_now(), algorithm=algorithm,
        hyperparameters=params, label=label or "prediction", task=shaped.task, classes=names,
        features=cards.feature_specs(columns, frame, frame), entity_key=None,
        metrics={f"sample_{k}": v for k, v in metrics.items()},
        data=DataInfo(fingerprint=fingerprint(sample), rows=len(sample), train_rows=0,
                      test_rows=len(sample), source=f"import {source}"),
        packages=cards.package_versions(), git_commit=None, parity_max_abs_diff=diff,
    )  # fmt: skip
    with steps.step(f"explain {min(IMPORTANCE_ROWS, len(x))} sample rows (SHAP)"):
        importance = feature_importance(card, profile, shaped.onnx_model, frame, seed)
    card = card.model_copy(update={"feature_importance": importance})
    path = registry.register(card, profile, shaped.onnx_model)
    log.info("registered an imported model", extra={"model": model, "version": version,
                                                    "path": str(path)})  # fmt: skip
    return card


def _profile_column(values: pd.Series, column: Column) -> pd.Series:
    if column.kind == "numeric":
        return values.astype("float64")
    return pd.Series([None if pd.isna(v) else str(v) for v in values], index=values.index)
