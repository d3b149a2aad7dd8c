"""The feature store's settings: env ``SLUICE_FEATURE_STORE_*`` (Redis: ``SLUICE_REDIS_URL``).

CLI options are passed as keyword arguments and win over the environment.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from sluice.core.settings import RedisSettings, ServiceSettings

ENV_PREFIX = "SLUICE_FEATURE_STORE_"


class Settings(ServiceSettings, RedisSettings):
    """How the feature store serves, and how it and its CLI reach Redis."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    port: int = Field(default=8001, ge=0, le=65535)
    """TCP port to listen on; 0 picks a free one."""

    redis_cluster: bool = False
    """Whether ``redis_url`` points at a Redis Cluster node (then redis-py's cluster client)."""

    redis_timeout_seconds: float = Field(default=1.0, gt=0)
    """Connect and command timeout; a Redis that does not answer in time is a 503."""

    registry_refresh_seconds: float = Field(default=5.0, gt=0)
    """How often the view definitions and freshness are re-read from Redis."""

    max_entities: int = Field(default=1000, ge=1)
    """Most entity values one online request may ask for; more is a 413."""

    max_push_rows: int = Field(default=10_000, ge=1)
    """Most rows one push may carry; more is a 413."""

    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    """Largest request body accepted; more is a 413."""

    push_max_future_seconds: float = Field(default=300.0, ge=0)
    """How far in the future a pushed event_timestamp may be (clock skew); later is a 422."""

    write_batch_size: int = Field(default=500, ge=1)
    """Rows per pipelined batch when writing to Redis (materialise and push)."""

    # PLACEHOLDER (branch openapi): helper "auth" declares the token fields; keep one at merge.
    feature_write_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("feature_write_token", "SLUICE_FEATURE_WRITE_TOKEN"),
    )
    """Bearer token of the Feast write paths (/push, /write-to-online-store); unset refuses
    them (``SLUICE_FEATURE_WRITE_TOKEN``)."""
