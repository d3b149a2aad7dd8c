"""The drift monitor's settings: env ``SLUICE_DRIFT_MONITOR_*``, CLI options win over env."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from sluice.core.settings import RedisSettings, ServiceSettings
from sluice.drift_monitor.verdict import DEFAULT_THRESHOLDS, Correction, Policy

ENV_PREFIX = "SLUICE_DRIFT_MONITOR_"


def env_var(field: str) -> str:
    """``window_size`` -> ``SLUICE_DRIFT_MONITOR_WINDOW_SIZE``."""
    return f"{ENV_PREFIX}{field.upper()}"


def _consumer_name() -> str:
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


class Settings(ServiceSettings, RedisSettings):
    """How one drift monitor replica reads the prediction log and judges drift."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    registry: Path
    """The model registry folder; each version's ``profile.json`` is its reference."""

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices(
            "redis_url", "SLUICE_DRIFT_MONITOR_REDIS_URL", "SLUICE_REDIS_URL"
        ),
    )
    """Redis with the router's prediction log and the monitor's state; or SLUICE_REDIS_URL."""

    redis_cluster: bool = False
    """That Redis is a Redis Cluster (the router's ``SLUICE_ROUTER_PREDLOG_REDIS_URL`` and
    ``SLUICE_ROUTER_PREDLOG_REDIS_CLUSTER`` name the same one): every key of a model carries
    its hash tag, so a model's stream and state share a shard and models spread over them."""

    port: int = Field(default=8090, ge=0, le=65535)
    """TCP port to listen on; 0 picks a free one."""

    window_size: int = Field(default=2000, ge=1)
    """Rows that close a window (per version; per side for a candidate-vs-stable window)."""

    window_seconds: float = Field(default=600.0, gt=0)
    """Record time (or idle wall-clock time) after which a window closes whatever its size."""

    min_window_size: int = Field(default=500, ge=1)
    """A window with fewer rows gets no verdict: its status is ``inconclusive``."""

    alpha: float = Field(default=0.05, gt=0, lt=1)
    """Significance level after correction: with ``holm`` the chance that a window without
    any change is called drift (docs/drift-alerts.md, "The false-alarm bound")."""

    correction: Correction = "holm"
    """Correction across a window's tests (features and outputs): ``holm`` (family-wise,
    any dependence), ``bonferroni``, ``bh`` (Benjamini-Hochberg: false discovery rate) or
    ``none`` (no bound)."""

    thresholds: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    """Effect-size thresholds by method (JSON), e.g. ``{"ks": 0.15}``; others keep the default.
    ``ks``, ``chi2`` and ``missing`` decide; ``psi``, ``wasserstein`` and ``jensen_shannon``
    only mark their evidence ``over_threshold``."""

    feature_thresholds: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Per-feature overrides (JSON): ``{"age": {"psi": 0.25}, "churn/plan": {"chi2": 0.2}}``."""

    ignore_features: list[str] = Field(default_factory=list)
    """Features (``name`` or ``model/name``) measured and reported but never flagged (JSON list)."""

    alert_after_windows: int = Field(default=3, ge=1)
    """Consecutive drifted windows of a version before the webhook is called (once)."""

    alert_webhook_url: str | None = None
    """POSTed the evidence when drift persists (e.g. a retraining trigger); unset: no call."""

    alert_timeout_seconds: float = Field(default=5.0, gt=0)
    """Time limit of one webhook call; up to three tries, retried only on a connection error,
    a 5xx or a 429 (honouring a Retry-After of up to 5 s)."""

    prediction_ttl_seconds: float = Field(default=86400.0, gt=0)
    """How long logged predictions are kept to join ground truth (``POST /v1/feedback``)."""

    performance_window: int = Field(default=5000, ge=1)
    """Latest labelled predictions per version the rolling performance is computed on."""

    max_feedback_items: int = Field(default=10000, ge=1)
    """Most labels one feedback request may carry."""

    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    """Largest feedback body (room for ``max_feedback_items`` labels with request-id ids);
    more is refused with 413, after the token check and without reading the rest."""

    feedback_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("feedback_token", "SLUICE_FEEDBACK_TOKEN")
    )
    """Bearer token ``POST /v1/feedback`` requires (``SLUICE_FEEDBACK_TOKEN``); unset: the
    admin token is required instead; neither set: feedback is refused."""

    admin_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("admin_token", "SLUICE_ADMIN_TOKEN")
    )
    """``SLUICE_ADMIN_TOKEN``: accepted for feedback only while ``SLUICE_FEEDBACK_TOKEN``
    is unset."""

    models: list[str] = Field(default_factory=list)
    """Models to watch (JSON list); empty: every model in the registry and every stream found."""

    group: str = "sluice-drift-monitor"
    """Consumer group name on the prediction-log streams."""

    consumer: str = Field(default_factory=_consumer_name)
    """This replica's consumer name within the group (unique per process by default)."""

    start_from: Literal["0", "$"] = "0"
    """Where a new consumer group starts: ``0`` (the whole retained log) or ``$`` (new entries)."""

    batch_entries: int = Field(default=1000, ge=1)
    """Most log entries read per call."""

    block_ms: int = Field(default=500, ge=1)
    """How long a read waits for new entries."""

    lease_seconds: float = Field(default=15.0, gt=0)
    """A model's owner must renew its lease within this time, or another replica takes over."""

    discovery_seconds: float = Field(default=10.0, gt=0)
    """How often models, replicas and metrics are refreshed."""

    history_windows: int = Field(default=20, ge=1)
    """Closed windows kept per version (and per pair) for the report."""

    side_cap_factor: int = Field(default=5, ge=1)
    """A comparison keeps at most ``window_size * factor`` rows of its busier side."""

    @field_validator("registry")
    @classmethod
    def _registry_exists(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(
                f"{env_var('registry')} / --registry: {value} is not a folder; point it at the "
                "model registry the trainer writes"
            )
        return value

    @field_validator("thresholds")
    @classmethod
    def _known_methods(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = set(value) - set(DEFAULT_THRESHOLDS)
        if unknown:
            raise ValueError(
                f"{env_var('thresholds')}: unknown method(s) {sorted(unknown)}; "
                f"use {sorted(DEFAULT_THRESHOLDS)}"
            )
        return {**DEFAULT_THRESHOLDS, **value}

    @field_validator("feature_thresholds")
    @classmethod
    def _known_override_methods(
        cls, value: dict[str, dict[str, float]]
    ) -> dict[str, dict[str, float]]:
        for feature, per in value.items():
            unknown = set(per) - set(DEFAULT_THRESHOLDS)
            if unknown:
                raise ValueError(
                    f"{env_var('feature_thresholds')}: {feature!r} names unknown method(s) "
                    f"{sorted(unknown)}; use {sorted(DEFAULT_THRESHOLDS)}"
                )
        return value

    @model_validator(mode="after")
    def _sizes(self) -> Settings:
        if self.min_window_size > self.window_size:
            raise ValueError(
                f"{env_var('min_window_size')} ({self.min_window_size}) is larger than "
                f"{env_var('window_size')} ({self.window_size}): no window could get a verdict"
            )
        return self

    def policy(self) -> Policy:
        return Policy(
            alpha=self.alpha,
            correction=self.correction,
            thresholds=dict(self.thresholds),
            overrides=self.feature_thresholds,
            ignore=frozenset(self.ignore_features),
            min_window_size=self.min_window_size,
        )
