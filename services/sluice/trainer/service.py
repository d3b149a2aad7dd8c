"""Train one model version from a table and register it: the trainer's one job.

infer the schema -> split -> fit -> score on held-out rows (a small regression table also
by cross-validation) -> export to ONNX -> check parity -> profile -> card -> register.
Nothing is written unless every step succeeded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pandas as pd

from sluice.core.errors import InvalidInput
from sluice.core.registry import DataInfo, FeatureSpec, ModelCard, ModelRegistry
from sluice.trainer import card as cards
from sluice.trainer.export import check_parity, parity, to_onnx
from sluice.trainer.importance import IMPORTANCE_ROWS, feature_importance
from sluice.trainer.pipeline import (
    CV_BELOW_ROWS,
    CV_FOLDS,
    KNOWN,
    build_pipeline,
    cross_validate_regression,
    evaluate,
    evaluate_regression,
    fit,
    hyperparameters,
    split,
)
from sluice.trainer.profile import build_profile
from sluice.trainer.progress import QuietSteps, Steps
from sluice.trainer.schema import (
    TableSchema,
    Task,
    feature_frame,
    infer_schema,
    label_values,
    target_values,
)
from sluice.trainer.tables import fingerprint
from sluice.trainer.versions import ensure_new_version

log = logging.getLogger(__name__)


def train_and_register(
    table: pd.DataFrame,
    *,
    model: str,
    version: str,
    registry: ModelRegistry,
    label: str = "churned",
    algorithm: str = "hgb",
    seed: int = 0,
    source: str | None = None,
    feature_refs: Sequence[str] = (),
    steps: Steps | None = None,
    threads: int = 1,
    task: Task | None = None,
) -> ModelCard:
    """Fit ``algorithm`` on ``table`` to predict ``label`` and register it as model/version.

    Raises InvalidInput for a table that cannot train (saying why), Conflict when the
    version exists (checked first, before any work, and again when registering), and
    ParityFailed when the ONNX export does not reproduce scikit-learn's probabilities (a
    regressor's values). ``task`` None guesses classification or regression from the label.
    ``feature_refs`` records which feature-store features the table came from (the router
    looks them up online); ``steps`` reports progress; ``threads`` caps the fit's threads.
    """
    steps = steps or QuietSteps()
    ensure_new_version(registry, model, version)
    if algorithm not in KNOWN:
        raise InvalidInput(f"unknown algorithm {algorithm!r}: pick one of {', '.join(KNOWN)}")
    schema = infer_schema(table, label, task)
    regression = schema.task == "regression"
    steps.note(_describe(schema))
    x = feature_frame(table, schema)
    y = target_values(table[label]) if regression else label_values(table[label])
    x_train_raw, x_test_raw, y_train, y_test = split(x, y, seed, stratify=not regression)
    specs = cards.feature_specs(schema.features, x_train_raw, x)
    x_train, x_test = _fill_categories(x_train_raw, specs), _fill_categories(x_test_raw, specs)
    numeric = [c.name for c in schema.features if c.kind == "numeric"]
    impute = bool(x[numeric].isna().any().any())
    pipeline = build_pipeline(schema.features, algorithm, seed, impute=impute, task=schema.task)
    metrics: dict[str, float] = {}
    if regression and len(x_train) < CV_BELOW_ROWS:
        with steps.step(f"cross-validate {algorithm} ({CV_FOLDS} folds)"):
            metrics.update(
                cross_validate_regression(pipeline, x_train, y_train, seed, threads=threads)
            )
    with steps.step(
        f"fit {algorithm} {schema.task} on {len(x_train):,} rows, {len(specs)} features"
    ):
        fit(pipeline, x_train, y_train, threads=threads)
    if regression:
        classes: list[object] = []
        held_out = pipeline.predict(x_test).astype("float64")
        metrics = {**evaluate_regression(y_test, held_out), **metrics}
    else:
        classes = list(pipeline.classes_)
        held_out = pipeline.predict_proba(x_test)
        metrics = evaluate(y_test, held_out, classes)
    with steps.step("export to ONNX"):
        onnx_model = to_onnx(pipeline, schema.features, schema.task)
    with steps.step(f"check ONNX parity on {len(x_test):,} held-out rows"):
        diff = parity(onnx_model, schema.features, x_test, held_out, schema.task)
        check_parity(diff, schema.task)
    names = [str(c) for c in classes]
    with steps.step("profile the training data"):
        profile = build_profile(x_train_raw, schema.features, held_out, y_test, names, label, seed)
        table_hash = fingerprint(table)
    card = ModelCard(
        model=model,
        version=version,
        created_at=cards.utc_now(),
        algorithm=algorithm,
        hyperparameters=hyperparameters(pipeline),
        label=label,
        task=schema.task,
        classes=names,
        features=specs,
        entity_key=schema.entity_key,
        feature_refs=list(feature_refs),
        metrics=metrics,
        data=DataInfo(
            fingerprint=table_hash,
            rows=len(table),
            train_rows=len(x_train),
            test_rows=len(x_test),
            source=source,
        ),
        packages=cards.package_versions(),
        git_commit=cards.git_commit(),
        parity_max_abs_diff=diff,
    )
    with steps.step(f"explain {min(IMPORTANCE_ROWS, len(x_test))} held-out rows (SHAP)"):
        importance = feature_importance(card, profile, onnx_model, x_test, seed)
    card = card.model_copy(update={"feature_importance": importance})
    path = registry.register(card, profile, onnx_model)
    log.info(
        "registered model version",
        extra={"model": model, "version": version, "path": str(path), **metrics},
    )
    return card


def _describe(schema: TableSchema) -> str:
    kinds = [c.kind for c in schema.features]
    text = (
        f"{schema.task} of {schema.label}; features: {kinds.count('numeric')} numeric, "
        f"{kinds.count('categorical')} categorical"
    )
    if schema.excluded:
        text += "; left out: " + ", ".join(f"{k} ({v})" for k, v in schema.excluded.items())
    if schema.entity_key:
        text += f"; entity key: {schema.entity_key}"
    return text


def _fill_categories(x: pd.DataFrame, specs: list[FeatureSpec]) -> pd.DataFrame:
    """Missing categories replaced by the training default: ONNX strings cannot be missing."""
    filled = x.copy()
    for spec in specs:
        if spec.kind == "categorical" and spec.allow_missing:
            filled[spec.name] = filled[spec.name].where(filled[spec.name].notna(), spec.default)
    return filled
