"""What goes on a model card besides the metrics: feature specs, packages, git commit, time."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pandas as pd

from sluice.core.registry import FeatureSpec
from sluice.trainer.schema import Column

PACKAGES = ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "pandas")


def feature_specs(
    columns: list[Column], x_train: pd.DataFrame, x_all: pd.DataFrame
) -> list[FeatureSpec]:
    """One spec per feature: categories and default from the training rows.

    The default is the median (numeric) or the most frequent category, the smallest on a
    tie; ``allow_missing`` says whether the table had missing values in that column.
    For example, numeric training values [1, 2, 10] give the default 2.0, categorical
    values ["b", "a", "b"] the categories ["a", "b"] and the default "b".
    """
    specs = []
    for c in columns:
        train = x_train[c.name].dropna()
        allow_missing = bool(x_all[c.name].isna().any())
        if c.kind == "numeric":
            default = float(train.median()) if len(train) else 0.0
            specs.append(
                FeatureSpec(
                    name=c.name, kind="numeric", dtype=c.dtype, allow_missing=allow_missing,
                    default=default,
                )
            )  # fmt: skip
            continue
        counts = train.astype(str).value_counts()
        categories = sorted(str(k) for k in counts.index)
        top = min(categories, key=lambda k: (-counts[k], k))
        specs.append(
            FeatureSpec(
                name=c.name, kind="categorical", dtype="string", categories=categories,
                allow_missing=allow_missing, default=top,
            )
        )  # fmt: skip
    return specs


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape the model and its ONNX export."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit(where: Path | None = None) -> str | None:
    """The commit of the git checkout holding the Sluice source, or None outside one."""
    folder = where or Path(__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def utc_now() -> str:
    """The current time as ISO 8601 UTC to the second, e.g. ``2026-11-22T09:30:00Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
