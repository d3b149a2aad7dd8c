"""The trainer's commands end to end, as a user runs them: real processes, exit codes, output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_iris

from sluice.core.registry import ModelRegistry
from tests.support.procs import sluice_command

pytestmark = pytest.mark.integration


def sluice(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run([*sluice_command(), *args], env=env)


def run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def registered(workdir: Path) -> Path:
    """A churn table generated and a churn v1 trained from it, both with the CLI."""
    data = workdir / "churn.csv"
    done = sluice("data", "generate", "--rows", "1500", "--seed", "2", "--out", str(data))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote 1,500 rows to {data} (churn rate ")
    registry = workdir / "registry"
    done = sluice(
        "train", "--model", "churn", "--version", "v1", "--registry", str(registry),
        "--data", str(data), "--algorithm", "logreg",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"registered churn v1 at {registry}")
    assert "ONNX parity" in done.stdout
    assert "left out: customer_id (id, by name), event_timestamp (timestamp, by name)" in (
        " ".join(done.stderr.split())
    )
    return registry


def test_generated_file_has_the_churn_columns(registered: Path, workdir: Path) -> None:
    table = pd.read_csv(workdir / "churn.csv")
    assert len(table) == 1500
    assert list(table.columns)[:2] == ["customer_id", "event_timestamp"]
    assert list(table.columns)[-1] == "churned"


def test_models_list_shows_the_version_and_its_metrics(registered: Path) -> None:
    done = sluice("models", "list", "--registry", str(registered))
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()
    assert header.split() == [
        "model", "version", "algorithm", "created", "accuracy", "precision", "recall", "f1",
        "roc_auc", "mae", "rmse", "r2",
    ]  # fmt: skip
    assert re.match(r"^churn +v1 +logreg +\d{4}-\d\d-\d\dT\S+Z +0\.\d{3} ", row)


def test_example_is_a_predict_body_with_every_feature(registered: Path) -> None:
    done = sluice(
        "data", "example", "--registry", str(registered), "--model", "churn", "--version", "v1"
    )
    assert done.returncode == 0, done.stderr
    (instance,) = json.loads(done.stdout)["instances"]
    card = ModelRegistry(registered).card("churn", "v1")
    assert list(instance) == [f.name for f in card.features]
    assert isinstance(instance["age"], int)
    assert instance["plan"] in {"basic", "standard", "premium"}


def test_training_an_existing_version_again_fails_and_says_why(registered: Path) -> None:
    card_file = registered / "churn" / "v1" / "card.json"
    before = card_file.read_bytes()
    done = sluice("train", "--model", "churn", "--version", "v1", "--registry", str(registered))
    assert done.returncode == 1
    assert done.stderr.startswith("error: model 'churn' version 'v1' is already registered")
    assert card_file.read_bytes() == before


def test_a_missing_label_fails_and_lists_the_columns(registered: Path, workdir: Path) -> None:
    done = sluice(
        "train", "--model", "churn", "--version", "v2", "--registry", str(registered),
        "--data", str(workdir / "churn.csv"), "--label", "left",
    )  # fmt: skip
    assert done.returncode == 1
    assert "error: no label column 'left'; the table's columns are: customer_id," in done.stderr
    assert "v2" not in ModelRegistry(registered).versions("churn")


def test_the_trainer_image_entry_point_trains_from_environment(tmp_path: Path) -> None:
    iris = load_iris(as_frame=True)
    table = iris.frame.drop(columns="target")
    table["species"] = [iris.target_names[i] for i in iris.target]
    table.to_parquet(tmp_path / "iris.parquet")
    env = {
        "SLUICE_TRAINER_MODEL": "iris",
        "SLUICE_TRAINER_VERSION": "v1",
        "SLUICE_TRAINER_REGISTRY": str(tmp_path / "registry"),
        "SLUICE_TRAINER_DATA": str(tmp_path / "iris.parquet"),
        "SLUICE_TRAINER_LABEL": "species",
        "SLUICE_TRAINER_ALGORITHM": "rf",
    }
    done = run([sys.executable, "-m", "sluice.trainer"], env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    card = ModelRegistry(tmp_path / "registry").card("iris", "v1")
    assert card.classes == ["setosa", "versicolor", "virginica"]
    assert card.algorithm == "rf"
    again = run([sys.executable, "-m", "sluice.trainer"], env=env)
    assert again.returncode == 1
    assert "already registered" in again.stdout  # the JSON log
