"""The router reads features from a Redis Cluster in process (``feature_lookup: redis`` with
``feature_redis_cluster``): the same answers as from a single Redis, for entities spread over
all three shards. A router not told its online store is a cluster says so in its log and
answers 503, not 500."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from tests.integration.router.conftest import EXAMPLES, MODEL, Stack, _load_features, metric
from tests.support.procs import Process, free_port, running, sluice_command

LOOKUPS = "sluice_router_feature_lookup_duration_seconds_count"


@pytest.fixture(scope="module")
def features_on_cluster(
    stack: Stack, redis_cluster: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The churn features materialised into the cluster; a folder for the routers' logs."""
    root = tmp_path_factory.mktemp("cluster-lookup")
    source = root / "churn.parquet"
    stack.table.to_parquet(source)
    definitions = root / "features.yaml"
    definitions.write_text(EXAMPLES.read_text().replace("../../.sluice/churn.parquet", str(source)))
    asyncio.run(_load_features(redis_cluster, definitions, cluster=True))
    return root


@contextmanager
def router(stack: Stack, root: Path, redis_cluster: str, cluster: bool) -> Iterator[Process]:
    port = free_port()
    argv = [*sluice_command(), "serve", "router", "--redis-url", stack.redis_url,
            "--registry", str(stack.registry.root), "--port", str(port)]  # fmt: skip
    env = {
        "SLUICE_ROUTER_FEATURE_REDIS_URL": redis_cluster,
        "SLUICE_ROUTER_FEATURE_REDIS_CLUSTER": str(cluster).lower(),
    }
    with running(
        argv, log=root / f"router-{port}.log", env=env, ready_url=f"http://127.0.0.1:{port}/readyz"
    ) as proc:
        yield proc


@pytest.fixture(scope="module")
def cluster_router(
    stack: Stack, redis_cluster: str, features_on_cluster: Path
) -> Iterator[Process]:
    with router(stack, features_on_cluster, redis_cluster, cluster=True) as proc:
        yield proc


def predict(url: str, customers: list[str]) -> httpx.Response:
    body = {"instances": [{"customer_id": c} for c in customers]}
    return httpx.post(f"{url}/v1/models/{MODEL}:predict", json=body, timeout=10)


def test_features_read_from_every_shard_give_the_single_redis_answers(
    stack: Stack, cluster_router: Process, redis_cluster: str
) -> None:
    stack.route()  # every request to v1
    customers = stack.customers(40, offset=100)
    cluster = redis.RedisCluster.from_url(redis_cluster)
    try:
        sizes = [cluster.dbsize(target_nodes=node) for node in cluster.get_primaries()]
    finally:
        cluster.close()
    url = cluster_router.url or ""
    looked_up = metric(url, LOOKUPS)
    on_cluster = predict(url, customers)
    on_single = predict(stack.router, customers)
    assert on_cluster.status_code == on_single.status_code == 200, on_cluster.text
    assert on_cluster.headers["x-sluice-version"] == "v1"
    assert on_cluster.json()["predictions"] == on_single.json()["predictions"]
    assert len(sizes) == 3 and all(sizes), f"features on every shard: {sizes}"
    assert metric(url, LOOKUPS) == looked_up + 1
    assert metric(url, "sluice_router_feature_lookup_errors_total") == 0


def test_an_unknown_customer_is_the_same_gap_as_on_a_single_redis(
    stack: Stack, cluster_router: Process
) -> None:
    stack.route()
    customers = [stack.customers(1)[0], "no-such-customer"]
    on_cluster, on_single = (
        predict(cluster_router.url or "", customers),
        predict(stack.router, customers),
    )
    assert (on_cluster.status_code, on_cluster.json()) == (
        on_single.status_code,
        on_single.json(),
    )


def test_a_cluster_read_as_a_single_redis_is_a_503_and_a_log_line_naming_the_setting(
    stack: Stack, redis_cluster: str, features_on_cluster: Path
) -> None:
    stack.route()
    with router(stack, features_on_cluster, redis_cluster, cluster=False) as proc:
        resp = predict(proc.url or "", stack.customers(1))
        assert resp.status_code == 503, resp.text
        # the views' refs cannot be read: a failed lookup, under the route's reject policy
        assert resp.json()["error"]["code"] == "feature_lookup_unavailable"
        assert "127.0.0.1" not in resp.text
        assert "SLUICE_ROUTER_FEATURE_REDIS_CLUSTER" in proc.output()
