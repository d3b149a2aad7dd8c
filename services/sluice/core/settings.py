"""The base every service's Settings inherits: env prefix per service, shared fields.

Only ``settings.py`` modules read the environment. A service builds its Settings once,
in ``__main__`` (CLI options passed as keyword arguments win over the environment), and
passes the object down.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class ServiceSettings(BaseSettings):
    """Fields every HTTP service has. Children set ``env_prefix="SLUICE_<SERVICE>_"``."""

    model_config = SettingsConfigDict(extra="forbid", validate_default=True)

    host: str = "127.0.0.1"
    """Address to listen on (0.0.0.0 in a container)."""

    port: int = Field(default=8000, ge=0, le=65535)
    """TCP port to listen on; 0 picks a free one."""

    log_level: LogLevel = "INFO"
    """Lowest level written to the JSON log."""

    graceful_shutdown_seconds: float = Field(default=10.0, ge=0)
    """How long a stopping server waits for in-flight requests to finish."""

    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    """The event loop uvicorn runs on (bench/peers.py measures both: see
    docs/benchmarks.md for CPU per request and tails at concurrency)."""


class RedisSettings(BaseSettings):
    """Mixin for services that use Redis: one shared variable, ``SLUICE_REDIS_URL``."""

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("redis_url", "SLUICE_REDIS_URL"),
    )
    """Where Redis is (redis://, rediss:// or unix://); also read from SLUICE_REDIS_URL."""
