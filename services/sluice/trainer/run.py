"""One training run, from a table to a registered version: what ``sluice train`` and
``python -m sluice.trainer`` (Dockerfile.train) both do, so the two never drift apart."""

from __future__ import annotations

from pathlib import Path

from sluice.core.registry import ModelCard, ModelRegistry
from sluice.trainer.progress import Steps
from sluice.trainer.schema import Task, infer_schema
from sluice.trainer.tables import load_table, training_set
from sluice.trainer.versions import ensure_new_version


def train(
    registry: ModelRegistry, *, model: str, version: str, data: Path | None, label: str,
    algorithm: str, task: Task | None, seed: int, rows: int, threads: int,
    features: Path | None, feature_refs: list[str], steps: Steps,
) -> ModelCard:  # fmt: skip
    """Load (or generate) the table, join features point-in-time when ``features`` names the
    views, refuse an unusable table before scikit-learn is imported, then train, check the
    ONNX export and register ``model``/``version`` (never replacing one)."""
    ensure_new_version(registry, model, version)
    table, source = load_table(data, rows=rows, seed=seed, steps=steps)
    refs: list[str] = []
    if features is not None:
        table, refs = training_set(table, features, feature_refs, label=label, steps=steps)
        source = f"{source} + {features}"
    infer_schema(table, label, task)
    from sluice.trainer.service import train_and_register  # takes seconds to import

    return train_and_register(
        table, model=model, version=version, registry=registry, label=label,
        algorithm=algorithm, seed=seed, source=source, feature_refs=refs, steps=steps,
        threads=threads, task=task,
    )  # fmt: skip
