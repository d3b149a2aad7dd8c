"""The trainer job's settings: env ``SLUICE_TRAINER_*`` (what Dockerfile.train runs).

The same fields as ``sluice train``'s options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from sluice.core.errors import InvalidInput
from sluice.core.registry import check_name
from sluice.core.settings import LogLevel

ENV_PREFIX = "SLUICE_TRAINER_"


class Settings(BaseSettings):
    """One training run: which table, which model and version, which registry."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    model: str
    """Name of the model to register, e.g. ``churn``."""

    version: str
    """New version name, e.g. ``v2``; an existing version is never replaced."""

    registry: Path
    """The model registry folder (a volume shared with the model servers)."""

    data: Path | None = None
    """Training table (.csv or .parquet); unset: a generated churn table."""

    label: str = "churned"
    """The label column: binary or multi-class, or a number to predict."""

    task: Literal["classification", "regression"] | None = None
    """Unset: regression when the label is numeric with fractions or many distinct values."""

    algorithm: Literal["linear", "logreg", "hgb", "rf"] = "hgb"
    """linear (logistic or ridge regression; logreg is the same), hgb (histogram gradient
    boosting) or rf (random forest)."""

    seed: int = 0
    """Seed for the generated table, the train/held-out split, the model and the profile."""

    rows: int = Field(default=10_000, ge=1)
    """Rows to generate when ``data`` is unset."""

    threads: int = Field(default=1, ge=1)
    """CPU threads the fit may use; more only helps with cores the trainer has to itself."""

    features: Path | None = None
    """Feature views (YAML), as ``sluice train --features``: features are joined
    point-in-time from their offline sources onto ``data``, which then only needs the entity
    key, event_timestamp and the label."""

    feature_refs: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """With ``features``: comma-separated ``view:feature`` or ``view:*`` refs, as
    ``--feature``; empty: every feature of every view."""

    log_level: LogLevel = "INFO"
    """Lowest level written to the JSON log."""

    @field_validator("feature_refs", mode="before")
    @classmethod
    def _split_refs(cls, value: object) -> object:
        if isinstance(value, str):
            return [ref.strip() for ref in value.split(",") if ref.strip()]
        return value

    @model_validator(mode="after")
    def _refs_need_views(self) -> Settings:
        if self.feature_refs and self.features is None:
            raise ValueError(f"{env_var('feature_refs')} needs {env_var('features')}")
        return self

    @field_validator("model", "version")
    @classmethod
    def _plain_name(cls, value: str, info: ValidationInfo) -> str:
        field = info.field_name or "name"
        try:
            return check_name(field, value)
        except InvalidInput as exc:
            raise ValueError(f"{env_var(field)}: {exc.message}") from None


def env_var(field: str) -> str:
    """The variable behind a field: ``model`` -> SLUICE_TRAINER_MODEL."""
    return f"{ENV_PREFIX}{field.upper()}"
