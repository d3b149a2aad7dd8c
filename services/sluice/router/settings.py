"""The router's settings: env ``SLUICE_ROUTER_*`` (the admin token: ``SLUICE_ADMIN_TOKEN``),
CLI options win over the environment. Every field is what the chart renders as env."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import NoDecode, SettingsConfigDict

from sluice.core.routes import TableError, parse_route
from sluice.core.settings import RedisSettings, ServiceSettings
from sluice.router.ratelimit import Fallback

ENV_PREFIX = "SLUICE_ROUTER_"

LookupMode = Literal["redis", "http", "off"]
ClientKind = Literal["http1", "aiohttp"]


def env_var(field: str) -> str:
    """``retries`` -> SLUICE_ROUTER_RETRIES."""
    return f"{ENV_PREFIX}{field.upper()}"


class Settings(ServiceSettings, RedisSettings):
    """How one router process routes, looks up features, mirrors and logs."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    port: int = Field(default=8000, ge=0, le=65535)
    """TCP port to listen on; 0 picks a free one."""

    routes: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Routes to seed at start-up, JSON: ``{"churn": {"upstreams": {"v1": ["http://..."]},
    "stable": "v1"}}`` (the chart renders its values here). A model with no route in Redis
    gets this one; a model that has one keeps its policy and gains any new versions."""

    admin_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("admin_token", "SLUICE_ADMIN_TOKEN")
    )
    """Bearer token of the admin API (``SLUICE_ADMIN_TOKEN``, from a Secret); unset: the
    admin API refuses every call."""

    admin_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Largest admin request body (a route); more is refused with 413, after the token
    check and without reading the rest."""

    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Comma-separated API keys; when set, inference needs one (``x-api-key`` or
    ``Authorization: Bearer``)."""

    feature_lookup: LookupMode = "redis"
    """Where features come from: ``redis`` reads the online store in process through the
    feature store's read module; ``http`` asks the feature store service; ``off``."""

    feature_store_url: str | None = None
    """The feature store service, e.g. http://sluice-feature-store:8000 (``http`` lookup)."""

    feature_read_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("feature_read_token", "SLUICE_FEATURE_READ_TOKEN"),
    )
    """Token sent to the feature store's online reads (``SLUICE_FEATURE_READ_TOKEN``), when
    the feature store requires one (``http`` lookup)."""

    feature_redis_url: str | None = None
    """The online store's Redis when it is not ``SLUICE_REDIS_URL`` (``redis`` lookup)."""
    feature_redis_password: SecretStr | None = None
    """The online store's Redis password when it is not ``SLUICE_REDIS_PASSWORD``'s (its own
    Secret); put into ``feature_redis_url`` unless that URL carries one."""
    feature_redis_cluster: bool = False
    """The online store is a Redis Cluster (``redis`` lookup; give ``feature_redis_url``):
    read with the cluster client, one pipeline per shard the request's entities hash to."""

    registry: Path | None = None
    """A model registry to read model cards from (entity key, feature refs, defaults) when
    the model servers' metadata does not carry them."""

    refresh_seconds: float = Field(default=0.5, gt=0, le=10)
    """Period of the routing table re-read that backs up pub/sub."""

    upstream_timeout_seconds: float = Field(default=2.0, gt=0, le=300)
    """Default per-call timeout of an upstream (a route may set one per version)."""

    connect_timeout_seconds: float = Field(default=0.5, gt=0, le=60)
    """Time allowed to open a connection to an upstream."""

    retries: int = Field(default=1, ge=0, le=5)
    """Retries of a call that could not connect or got 502/503/504, each on the next
    replica of the same version."""

    upstream_client: ClientKind = "http1"
    """HTTP client to the model servers: ``http1``, the router's own keep-alive client
    (the faster, see bench/results/router.md), or ``aiohttp``."""

    upstream_connections: int = Field(default=256, ge=1)
    """Most open connections per upstream host."""

    breaker_failures: int = Field(default=5, ge=1)
    """Failures in a row that open a version's circuit breaker."""

    breaker_cooldown_seconds: float = Field(default=5.0, gt=0)
    """How long an open breaker refuses calls before it lets one probe through."""

    lookup_timeout_seconds: float = Field(default=0.5, gt=0, le=60)
    """Time allowed for one feature lookup (and for reading the feature views' refs when a
    version is first used)."""

    schema_retry_seconds: float = Field(default=1.0, ge=0, le=300)
    """A version first used while the feature store could not name its features' refs is
    served as if every lookup failed (the ``on_missing`` policy); one request this often
    reads the refs again until they come."""

    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    """Largest inference body accepted; more is refused with 413."""

    max_response_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """Largest answer read from an upstream (model server, feature store); a larger one is
    not held in memory: the client gets a 502 naming this limit."""

    max_batch_size: int = Field(default=1024, ge=1)
    """Most rows one inference request may carry; more is refused with 413."""

    rate_limit_rps: float = Field(default=0.0, ge=0)
    """Requests per second per client (API key, else client IP), shared by every replica
    (kept in Redis); 0 turns the limit off."""

    rate_limit_burst: int = Field(default=0, ge=0)
    """Requests a client may send at once; 0 means one second's worth of the rate."""

    rate_limit_timeout_seconds: float = Field(default=0.05, gt=0, le=5)
    """How long a request waits for Redis to check the shared rate limit before
    ``rate_limit_fallback`` decides instead (Redis is then left alone for a second)."""

    rate_limit_fallback: Fallback = "local"
    """When Redis cannot check the shared limit: ``local`` (this replica's own bucket at
    the same rate), ``open`` (let through) or ``closed`` (refuse with 429)."""

    ready_needs_redis: bool = True
    """/readyz answers 503 while Redis does not answer PING. ``false``: the router stays
    ready through a Redis outage, serving the last routing table it read (Redis is then
    shown in /readyz but does not fail it)."""

    trust_forwarded_for: bool = False
    """Take the client IP from ``X-Forwarded-For`` (behind a trusted ingress only)."""

    shadow_queue_size: int = Field(default=1000, ge=1)
    """Mirrored calls waiting to be sent; more are dropped and counted."""

    shadow_concurrency: int = Field(default=4, ge=1)
    """Mirrored calls in flight at once."""

    shadow_batch_rows: int = Field(default=32, ge=1)
    """Copies waiting together go to the candidate in one call until it holds this many
    rows (1: one call per copy). A call costs the router and the candidate about as much
    for 30 rows as for one."""

    shadow_linger_seconds: float = Field(default=0.005, ge=0, le=1)
    """How long a shadow worker waits for more copies before it sends a call that is not
    full (only the copy waits; the user's answer never does)."""

    explain_timeout_seconds: float = Field(default=60.0, gt=0)
    """How long ``:explain`` waits for the model server (explanations take seconds)."""

    shadow_value_tolerance: float = Field(default=0.05, ge=0)
    """Regressors: a shadow row agrees when the candidate's value is within this share of
    stable's (0.05: 5%), plus ``shadow_value_abs_tolerance``."""

    shadow_value_abs_tolerance: float = Field(default=0.0, ge=0)
    """Regressors: the absolute part of the tolerance, in the label's own unit (useful
    where stable's value can be near zero)."""

    shadow_keep: int = Field(default=100, ge=1)
    """Disagreements kept per model in Redis for ``sluice shadow diff``."""

    predlog_sample: float = Field(default=1.0, gt=0, le=1)
    """Share of a stable-only route's answered requests written to the prediction log (a
    route's own ``predlog_sample`` wins; with a candidate every request is written). At
    high rates one record per request is most of a Redis shard's writes: docs/scaling.md."""

    predlog_redis_url: str | None = None
    """The prediction log's Redis when it is not ``SLUICE_REDIS_URL`` (the drift monitor's
    ``SLUICE_DRIFT_MONITOR_REDIS_URL`` names the same one)."""
    predlog_redis_password: SecretStr | None = None
    """Its password when it is not ``SLUICE_REDIS_PASSWORD``'s; put into
    ``predlog_redis_url`` unless that URL carries one."""
    predlog_redis_cluster: bool = False
    """The prediction log's Redis is a Redis Cluster (give ``predlog_redis_url``): each
    model's stream is on the shard its hash tag picks, so many models spread their writes
    over the shards (docs/scaling.md)."""

    predlog_streams: int = Field(default=1, ge=1, le=64)
    """Streams each model's prediction log is spread over, a record to each in turn
    (``sluice:predlog:{churn}``, ``{churn~1}``, ...: each its own hash tag). One stream
    carries about 100k records a second at half a Redis shard's CPU; on a Redis Cluster
    more streams let one busy model's log use several shards (docs/scaling.md). The drift
    monitor finds a model's streams by itself and reads them as one log."""

    predlog_maxlen: int = Field(default=100_000, ge=100)
    """Approximate length each prediction-log stream is trimmed to (a model's log keeps
    ``predlog_streams`` times this)."""

    predlog_buffer: int = Field(default=10_000, ge=1)
    """Records waiting to be written; more are dropped and counted."""

    predlog_batch: int = Field(default=256, ge=1)
    """Records written per Redis round trip at most."""

    predlog_linger_seconds: float = Field(default=0.01, ge=0, le=1)
    """How long the writer waits to gather a batch (records reach Redis this much later)."""

    tally_flush_seconds: float = Field(default=0.2, gt=0, le=5)
    """How often this router adds its traffic tallies (per version and second: calls,
    failures, latency, shadow agreement) to Redis, where the rollout controller sums every
    replica's. The controller reads a window this much (plus its settle time) late."""

    tally_retention_seconds: int = Field(default=3600, ge=60)
    """How long each second's tallies stay in Redis: the longest analysis window."""

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("routes")
    @classmethod
    def _valid_routes(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for model, spec in value.items():
            try:
                parse_route(model, spec)
            except TableError as exc:
                raise ValueError(f"{env_var('routes')}: {exc}") from None
        return value

    @field_validator("feature_store_url")
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{env_var(str(info.field_name))}: {value!r} is not an http(s) URL")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _lookup_has_a_source(self) -> Settings:
        if self.feature_lookup == "http" and not self.feature_store_url:
            raise ValueError(
                f"{env_var('feature_lookup')}=http needs {env_var('feature_store_url')}"
            )
        if self.feature_redis_cluster and (
            self.feature_lookup != "redis" or not self.feature_redis_url
        ):
            raise ValueError(
                f"{env_var('feature_redis_cluster')}=true needs {env_var('feature_lookup')}=redis"
                f" and {env_var('feature_redis_url')} (the routing table's Redis is no cluster)"
            )
        if self.predlog_redis_cluster and not self.predlog_redis_url:
            raise ValueError(
                f"{env_var('predlog_redis_cluster')}=true needs {env_var('predlog_redis_url')}"
                " (the routing table's Redis is no cluster)"
            )
        return self
