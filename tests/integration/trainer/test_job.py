"""``python -m sluice.trainer``, what the trainer image runs, as a Kubernetes Job runs it."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from sluice.core.registry import ModelRegistry
from sluice.trainer.__main__ import main
from tests.integration.trainer.test_feature_store_training import leaky_world
from tests.support.users import as_user

pytestmark = pytest.mark.integration


def test_the_job_trains_from_the_feature_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spine, definitions = leaky_world(tmp_path)
    spine.to_parquet(tmp_path / "spine.parquet")
    for name, value in {
        "MODEL": "churn", "VERSION": "v1", "REGISTRY": str(tmp_path / "registry"),
        "DATA": str(tmp_path / "spine.parquet"), "FEATURES": str(definitions),
        "FEATURE_REFS": "account:signal", "ALGORITHM": "logreg",
    }.items():  # fmt: skip
        monkeypatch.setenv(f"SLUICE_TRAINER_{name}", value)
    assert main() == 0
    card = ModelRegistry(tmp_path / "registry").card("churn", "v1")
    assert card.feature_refs == ["account:signal"]


@pytest.mark.skipif(os.geteuid() != 0, reason="switching uids needs root")
def test_a_registry_it_cannot_write_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = Path(tempfile.mkdtemp(prefix="sluice-ro-registry-"))
    try:
        base.chmod(0o755)  # root's: the Job's uid may read, not write
        monkeypatch.setenv("SLUICE_TRAINER_MODEL", "churn")
        monkeypatch.setenv("SLUICE_TRAINER_VERSION", "v1")
        monkeypatch.setenv("SLUICE_TRAINER_REGISTRY", str(base))
        code, output = as_user(10001, main)
    finally:
        shutil.rmtree(base)
    assert code == 1
    (line,) = output.splitlines()
    record = json.loads(line)
    assert record["level"] == "ERROR"
    assert f"the registry {base} is not writable here" in record["message"]
    assert "Traceback" not in output
