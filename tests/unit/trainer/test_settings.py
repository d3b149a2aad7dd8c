from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sluice.trainer.settings import Settings


def test_settings_come_from_sluice_trainer_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_TRAINER_MODEL", "churn")
    monkeypatch.setenv("SLUICE_TRAINER_VERSION", "v2")
    monkeypatch.setenv("SLUICE_TRAINER_REGISTRY", "/registry")
    monkeypatch.setenv("SLUICE_TRAINER_ALGORITHM", "rf")
    settings = Settings()
    assert (settings.model, settings.version, settings.algorithm) == ("churn", "v2", "rf")
    assert settings.registry == Path("/registry")
    assert (settings.data, settings.label, settings.seed) == (None, "churned", 0)


def test_a_bad_version_name_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_TRAINER_MODEL", "churn")
    monkeypatch.setenv("SLUICE_TRAINER_VERSION", "V 2")
    monkeypatch.setenv("SLUICE_TRAINER_REGISTRY", "/registry")
    with pytest.raises(ValidationError, match="SLUICE_TRAINER_VERSION: version name 'V 2'"):
        Settings()


def test_an_unknown_algorithm_is_refused() -> None:
    with pytest.raises(ValidationError, match="algorithm"):
        Settings(model="churn", version="v1", registry=Path("r"), algorithm="svm")  # type: ignore[arg-type]
