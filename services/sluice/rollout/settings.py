"""The rollout controller's settings: env ``SLUICE_ROLLOUT_*`` (the admin token:
``SLUICE_ADMIN_TOKEN``; Redis: ``SLUICE_REDIS_URL``); CLI options win over env."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from sluice.core.settings import RedisSettings, ServiceSettings

ENV_PREFIX = "SLUICE_ROLLOUT_"


def env_var(field: str) -> str:
    """``tick_seconds`` -> ``SLUICE_ROLLOUT_TICK_SECONDS``."""
    return f"{ENV_PREFIX}{field.upper()}"


class Settings(ServiceSettings, RedisSettings):
    """How one controller replica finds rollouts, judges them and changes routes."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    port: int = Field(default=8095, ge=0, le=65535)
    """TCP port to listen on; 0 picks a free one."""

    source: Literal["redis", "kubernetes"] = "redis"
    """Where ModelRollouts are declared: in Redis through the admin API and
    ``sluice rollout apply`` (one machine), or as Kubernetes resources (a cluster)."""

    namespace: str = "default"
    """Kubernetes: the namespace whose ModelRollouts this controller runs."""

    kubeconfig: Path | None = None
    """Kubernetes: a kubeconfig file; unset means the pod's in-cluster credentials."""

    lease_name: str = "sluice-rollout-controller"
    """The lease only one replica holds at a time (a Kubernetes Lease, or a Redis key)."""

    lease_seconds: float = Field(default=15.0, ge=1)
    """A leader that stops renewing loses the lease after this long."""

    identity: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    """This replica's name in the lease."""

    tick_seconds: float = Field(default=0.25, gt=0, le=10)
    """How often the leader looks at every rollout (a check runs only when its interval
    has passed)."""

    settle_seconds: float = Field(default=0.5, ge=0, le=30)
    """A check's window ends this long before now: the routers write their tallies every
    ``SLUICE_ROUTER_TALLY_FLUSH_SECONDS``, so the last moment is not complete yet."""

    drift_monitor_url: str | None = None
    """The drift monitor, for the featureDrift, predictionDrift and accuracy metrics."""

    provider_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    """Timeout of a call to the drift monitor or to a prometheus / web provider."""

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Largest admin API request body accepted (413 past it); a ModelRollout is a few KB."""

    admin_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("admin_token", "SLUICE_ADMIN_TOKEN")
    )
    """Bearer token of the admin API (``SLUICE_ADMIN_TOKEN``); unset disables it."""

    @field_validator("drift_monitor_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{env_var('drift_monitor_url')}: {value!r} is not an http(s) URL")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _renewable(self) -> Settings:
        if self.tick_seconds * 3 > self.lease_seconds:
            raise ValueError(
                f"{env_var('tick_seconds')} must be at most a third of {env_var('lease_seconds')}"
            )
        return self
