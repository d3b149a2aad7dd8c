"""The base every service's Settings inherits: env prefix per service, shared fields.

Only ``settings.py`` modules read the environment. A service builds its Settings once,
in ``__main__`` (CLI options passed as keyword arguments win over the environment), and
passes the object down.
"""

from __future__ import annotations

from typing import Literal, Self
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr, model_validator
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
    """The event loop uvicorn runs on (sluice.bench.peers measures both: see
    docs/benchmarks.md for CPU per request and tails at concurrency)."""

    reuse_port: bool = False
    """Bind with SO_REUSEPORT, so several processes of this service on one host share the
    port and the kernel spreads connections among them (sluice.bench.scale; one process per
    pod is the usual way on Kubernetes)."""

    gc_freeze: bool = True
    """Before serving, move every object made at startup (modules, the app, the model)
    out of the cyclic GC's reach and collect the youngest generation every 5,000
    allocations instead of 700. Full collections then stop walking the startup heap in
    the middle of requests: the router's p99 at c=16 fell 3-4x (docs/benchmarks.md)."""
    hot_protocol: bool = True
    """Answer the inference POSTs from uvicorn's protocol directly, without an ASGI cycle,
    headers and body in one write (``core/serve.HotHttpProtocol``); false serves them
    through uvicorn's ASGI cycle like every other route (docs/benchmarks.md)."""


def with_password(url: str, password: str) -> str:
    """``url`` with Redis's ``password`` in it, unless the URL carries one already.

    >>> with_password("redis://redis:6379/0", "s3cret")
    'redis://:s3cret@redis:6379/0'
    >>> with_password("rediss://default@redis:6380/0", "p@ss word")
    'rediss://default:p%40ss%20word@redis:6380/0'
    >>> with_password("redis://:mine@redis:6379/0", "s3cret")
    'redis://:mine@redis:6379/0'
    >>> with_password("unix:///run/redis.sock?db=1", "s3cret")
    'unix:///run/redis.sock?db=1&password=s3cret'
    """
    parts = urlsplit(url)
    if parts.password or "password=" in parts.query:
        return url
    secret = quote(password, safe="")
    if parts.scheme == "unix":
        return f"{url}{'&' if parts.query else '?'}password={secret}"
    user = quote(parts.username, safe="") if parts.username else ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{secret}@{host}"))


class RedisSettings(BaseSettings):
    """Mixin for services that use Redis: one shared variable, ``SLUICE_REDIS_URL``, and
    its password, ``SLUICE_REDIS_PASSWORD``."""

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("redis_url", "SLUICE_REDIS_URL"),
    )
    """Where Redis is (redis://, rediss:// or unix://); also read from SLUICE_REDIS_URL."""

    redis_password: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("redis_password", "SLUICE_REDIS_PASSWORD")
    )
    """Redis's password (``SLUICE_REDIS_PASSWORD``, from a Secret; ``requirepass``), put
    into every Redis URL of these settings that carries none (a URL's own password wins).
    A URL setting ``<x>_redis_url`` with a ``<x>_redis_password`` setting of its own (the
    router's online store) takes that one when it is set."""

    @model_validator(mode="after")
    def _apply_redis_password(self) -> Self:
        for name in type(self).model_fields:
            value = getattr(self, name)
            if not (name.endswith("redis_url") and isinstance(value, str)):
                continue
            own = getattr(self, name.removesuffix("url") + "password", None)
            for secret in (own, self.redis_password):
                if isinstance(secret, SecretStr) and secret.get_secret_value():
                    setattr(self, name, with_password(value, secret.get_secret_value()))
                    break
        return self
