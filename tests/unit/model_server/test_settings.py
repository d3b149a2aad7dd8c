from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from sluice.cli import app
from sluice.core.errors import InvalidInput
from sluice.model_server.settings import Settings, load_settings


def test_every_setting_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_MODEL_SERVER_REGISTRY", str(tmp_path))
    monkeypatch.setenv("SLUICE_MODEL_SERVER_MODEL", "churn")
    monkeypatch.setenv("SLUICE_MODEL_SERVER_VERSION", "v2")
    monkeypatch.setenv("SLUICE_MODEL_SERVER_MAX_BATCH_SIZE", "16")
    monkeypatch.setenv("SLUICE_MODEL_SERVER_INFERENCE_MODE", "thread")
    monkeypatch.setenv("SLUICE_MODEL_SERVER_PORT", "9000")
    settings = Settings()
    assert (settings.registry, settings.model, settings.version) == (tmp_path, "churn", "v2")
    assert settings.max_batch_size == 16 and settings.inference_mode == "thread"
    assert settings.port == 9000


def test_keyword_arguments_win_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_MODEL_SERVER_PORT", "9000")
    settings = Settings(registry=tmp_path, model="churn", version="v1", port=9100)
    assert settings.port == 9100


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        ("max_batch_size", 0, "SLUICE_MODEL_SERVER_MAX_BATCH_SIZE must be at least 1"),
        ("max_body_bytes", -5, "SLUICE_MODEL_SERVER_MAX_BODY_BYTES must be at least 1"),
        ("model", "../etc", "SLUICE_MODEL_SERVER_MODEL: '../etc' is not a registry name"),
        ("registry", "/no/such/folder", "SLUICE_MODEL_SERVER_REGISTRY: /no/such/folder is not"),
    ],
)
def test_validators_name_the_variable(
    tmp_path: Path, field: str, value: object, variable: str
) -> None:
    given: dict[str, object] = {"registry": tmp_path, "model": "churn", "version": "v1"}
    with pytest.raises(ValidationError, match=variable):
        Settings(**{**given, field: value})  # type: ignore[arg-type]


def test_the_cli_reports_bad_settings_and_unknown_models(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(
        app, ["serve", "model-server", "--registry", str(tmp_path / "nope"), "--model", "m",
              "--version", "v1"],
    )  # fmt: skip
    assert isinstance(bad.exception, InvalidInput)  # main() prints it as "error: ..."
    assert "SLUICE_MODEL_SERVER_REGISTRY:" in bad.exception.message


def test_load_settings_names_the_variable_of_every_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_MODEL_SERVER_INFERENCE_MODE", "sometimes")
    with pytest.raises(InvalidInput) as caught:
        load_settings(registry=tmp_path, version="v1", max_batch_size=0)
    message = caught.value.message
    assert "SLUICE_MODEL_SERVER_INFERENCE_MODE: Input should be 'direct'" in message
    assert "SLUICE_MODEL_SERVER_MODEL: Field required" in message
    assert "SLUICE_MODEL_SERVER_MAX_BATCH_SIZE must be at least 1" in message
