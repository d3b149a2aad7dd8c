"""What ``sluice up`` starts, as plain values: the services in start order, their ports,
command lines and environment, and Prometheus's scrape configuration.

Nothing here starts a process or reads the environment; ``stack.py`` carries the plan out.

The order is the order of need: Redis first (everything keeps its state there), the feature
store, one model server per version, the router (it needs the model servers to route to),
the drift monitor (it reads the router's prediction log), the rollout controller (it asks
the drift monitor), Prometheus last (it scrapes them all). ``sluice down`` stops them in
the reverse order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REDIS = "redis"
FEATURE_STORE = "feature-store"
ROUTER = "router"
DRIFT_MONITOR = "drift-monitor"
ROLLOUT = "rollout-controller"
PROMETHEUS = "prometheus"
SECRETS = (
    "SLUICE_ADMIN_TOKEN",
    "SLUICE_FEATURE_WRITE_TOKEN",
    "SLUICE_FEEDBACK_TOKEN",
    "SLUICE_REDIS_PASSWORD",
)
"""The per-stack secrets ``sluice up`` generates once and passes to every service."""

# A local stack shows results in seconds, not after the cluster defaults' ten minutes.
LOCAL_DRIFT_ENV = {
    "SLUICE_DRIFT_MONITOR_WINDOW_SIZE": "500",
    "SLUICE_DRIFT_MONITOR_MIN_WINDOW_SIZE": "200",
    "SLUICE_DRIFT_MONITOR_WINDOW_SECONDS": "15",
    "SLUICE_DRIFT_MONITOR_DISCOVERY_SECONDS": "1",
}


def model_server(version: str) -> str:
    """The service name of ``version``'s model server: ``model-server-v1``."""
    return f"model-server-{version}"


@dataclass(frozen=True)
class Service:
    """One process of the stack."""

    name: str
    argv: tuple[str, ...]
    port: int
    env: Mapping[str, str] = field(default_factory=dict)
    """Added to the environment ``sluice up`` runs in."""
    ready_path: str | None = "/readyz"
    """HTTP path that answers 200 once ready; None for Redis (PING)."""

    @property
    def url(self) -> str:
        scheme = "redis" if self.name == REDIS else "http"
        return f"{scheme}://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class Layout:
    """Where a stack keeps its things, under its home folder (``.sluice`` by default)."""

    home: Path

    @property
    def stack(self) -> Path:
        return self.home / "stack"

    @property
    def logs(self) -> Path:
        return self.stack / "logs"

    @property
    def redis_dir(self) -> Path:
        return self.stack / "redis"

    @property
    def registry(self) -> Path:
        return self.home / "registry"

    @property
    def data(self) -> Path:
        return self.home / "churn.parquet"

    @property
    def features(self) -> Path:
        return self.stack / "features.yaml"

    @property
    def prometheus_dir(self) -> Path:
        return self.stack / "prometheus"


def parse_ports(given: Sequence[str]) -> dict[str, int]:
    """``NAME=PORT`` options as a mapping; a malformed one raises ValueError naming it.

    >>> parse_ports(["router=8080", "redis=6390"])
    {'router': 8080, 'redis': 6390}
    """
    ports: dict[str, int] = {}
    for item in given:
        name, sep, port = item.partition("=")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"--port {item!r}: expected NAME=PORT, e.g. router=8080")
        ports[name.strip()] = int(port)
    return ports


def service_names(versions: Sequence[str], *, prometheus: bool) -> list[str]:
    """Every service in start order.

    >>> service_names(["v1", "v2"], prometheus=False)  # doctest: +NORMALIZE_WHITESPACE
    ['redis', 'feature-store', 'model-server-v1', 'model-server-v2', 'router',
     'drift-monitor', 'rollout-controller']
    """
    names = [REDIS, FEATURE_STORE, *(model_server(v) for v in versions), ROUTER]
    names += [DRIFT_MONITOR, ROLLOUT]
    return [*names, PROMETHEUS] if prometheus else names


def redis_url(port: int, password: str) -> str:
    """The URL every service reaches the stack's Redis with (the password in it).

    >>> redis_url(6390, "s3cret")
    'redis://:s3cret@127.0.0.1:6390/0'
    """
    return f"redis://:{password}@127.0.0.1:{port}/0"


def plan(
    layout: Layout,
    *,
    sluice: Sequence[str],
    redis_server: str,
    prometheus: str | None,
    model: str,
    versions: Sequence[str],
    ports: Mapping[str, int],
    secrets: Mapping[str, str],
) -> list[Service]:
    """The services in start order. ``ports`` must name every service of
    :func:`service_names`; ``secrets`` every name of :data:`SECRETS`."""
    password = secrets["SLUICE_REDIS_PASSWORD"]
    common = {**secrets, "SLUICE_REDIS_URL": redis_url(ports[REDIS], password)}
    registry = ("--registry", str(layout.registry))

    def sluice_service(name: str, *args: str, env: Mapping[str, str] | None = None) -> Service:
        argv = (*sluice, "serve", *args, "--port", str(ports[name]))
        return Service(name, argv, ports[name], {**common, **(env or {})})

    redis = (
        redis_server, "--port", str(ports[REDIS]), "--bind", "127.0.0.1",
        "--dir", str(layout.redis_dir), "--appendonly", "yes", "--save", "",
        "--requirepass", password,
    )  # fmt: skip
    services = [
        Service(REDIS, redis, ports[REDIS], {}, ready_path=None),
        sluice_service(FEATURE_STORE, "feature-store"),
    ]
    for version in versions:
        name = model_server(version)
        args = ("model-server", *registry, "--model", model, "--version", version)
        services.append(sluice_service(name, *args))
    services.append(sluice_service(ROUTER, "router", *registry))
    services.append(sluice_service(DRIFT_MONITOR, "drift-monitor", *registry, env=LOCAL_DRIFT_ENV))
    drift = f"http://127.0.0.1:{ports[DRIFT_MONITOR]}"
    services.append(
        sluice_service(
            ROLLOUT, "rollout-controller", env={"SLUICE_ROLLOUT_DRIFT_MONITOR_URL": drift}
        )
    )
    if prometheus is not None:
        folder = layout.prometheus_dir
        argv = (
            prometheus, f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{ports[PROMETHEUS]}",
        )  # fmt: skip
        services.append(Service(PROMETHEUS, argv, ports[PROMETHEUS], {}, ready_path="/-/ready"))
    return services


def prometheus_config(services: Sequence[Service], rules: Path) -> dict[str, Any]:
    """Prometheus's configuration: every HTTP service scraped every 5 s with the
    ``component`` label the chart's alerts group by, and the chart's rules loaded.

    >>> s = [Service("router", ("sluice",), 8080), Service("redis", ("redis-server",), 6379)]
    >>> prometheus_config(s, Path("/a.yaml"))["scrape_configs"][0]["static_configs"]
    [{'targets': ['127.0.0.1:8080'], 'labels': {'component': 'router'}}]
    """
    jobs = []
    for service in services:
        if service.ready_path != "/readyz":  # Redis and Prometheus itself
            continue
        component = "model-server" if service.name.startswith("model-server-") else service.name
        target = {"targets": [f"127.0.0.1:{service.port}"], "labels": {"component": component}}
        jobs.append({"job_name": service.name, "static_configs": [target]})
    return {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "rule_files": [str(rules)],
        "scrape_configs": jobs,
    }
