"""The prediction log and the monitor's state on a real three-shard Redis Cluster: three
models whose streams hash to three different shards are all read, windowed and reported,
each model's state beside its (first) stream; one model's log spread over three streams
on three shards is read as one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from sluice.core.predlog import stream_key
from sluice.core.registry import ModelRegistry
from sluice.drift_monitor.backends import state_key
from tests.integration.drift_monitor.conftest import FEEDBACK_TOKEN, rows_committed
from tests.integration.drift_monitor.traffic import Traffic, train
from tests.support.procs import Process, free_port, running, sluice_command

MODELS = ("churn", "churn-eu", "churn-apac")  # their hash tags fall on three shards
STREAMS = {"churn": 3, "churn-eu": 1, "churn-apac": 1}
"""churn's log is spread over three streams (SLUICE_ROUTER_PREDLOG_STREAMS), one a shard."""
SIZE = 500


@pytest.fixture(scope="module")
def registry_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cluster-registry")
    for seed, model in enumerate(MODELS, start=1):
        train(root, model, "v1", seed=seed)
    return root


@pytest.fixture
def cluster(redis_cluster: str) -> Iterator[redis.RedisCluster]:
    client = redis.RedisCluster.from_url(redis_cluster)
    client.flushall(target_nodes=redis.RedisCluster.PRIMARIES)
    yield client
    client.close()


def test_models_on_every_shard_are_read_and_reported(
    registry_root: Path, redis_cluster: str, cluster: redis.RedisCluster, tmp_path: Path
) -> None:
    registry = ModelRegistry(registry_root)
    senders = [
        Traffic(registry, m, "v1", redis_cluster, cluster=True, streams=STREAMS[m]) for m in MODELS
    ]
    try:
        for n, sender in enumerate(senders):
            sender.send(2 * SIZE, seed=10 + n)
        shards = {cluster.get_node_from_key(stream_key(m)).name for m in MODELS}
        assert len(shards) == 3, shards
        spread = {cluster.get_node_from_key(stream_key("churn", s)).name for s in range(3)}
        assert len(spread) == 3, spread
        port = free_port()
        argv = [*sluice_command(), "serve", "drift-monitor", "--redis-url", redis_cluster,
                "--registry", str(registry_root), "--port", str(port)]  # fmt: skip
        env = {
            "SLUICE_DRIFT_MONITOR_REDIS_CLUSTER": "true",
            "SLUICE_FEEDBACK_TOKEN": FEEDBACK_TOKEN,
            "SLUICE_DRIFT_MONITOR_DISCOVERY_SECONDS": "0.5",
            "SLUICE_DRIFT_MONITOR_BLOCK_MS": "100",
            "SLUICE_DRIFT_MONITOR_WINDOW_SIZE": str(SIZE),
        }
        with running(
            argv, log=tmp_path / "monitor.log", env=env, ready_url=f"http://127.0.0.1:{port}/readyz"
        ) as proc:
            for model in MODELS:
                wait_rows(proc, model, 2 * SIZE)
            for n, sender in enumerate(senders):  # entries written while it reads
                sender.send(SIZE, seed=20 + n)
            bodies = {m: wait_rows(proc, m, 3 * SIZE) for m in MODELS}
    finally:
        for sender in senders:
            sender.close()
    for model, body in bodies.items():
        history = body["versions"]["v1"]["history"]
        assert sorted(w["index"] for w in history) == [0, 1, 2], (model, history)
        assert all(w["rows"] == SIZE for w in history)
        # the model's state is on its stream's shard (one Lua commit touches both)
        assert cluster.exists(state_key(model, "latest"))
        assert (
            cluster.get_node_from_key(state_key(model, "latest")).name
            == cluster.get_node_from_key(stream_key(model)).name
        )
        # every entry read is acknowledged: nothing left pending for a later replica
        for shard in range(STREAMS[model]):
            key = stream_key(model, shard)
            assert cluster.xlen(key) > 0
            assert cluster.xpending(key, "sluice-drift-monitor")["pending"] == 0


def wait_rows(proc: Process, model: str, rows: int) -> dict[str, Any]:
    """Poll ``model``'s drift report until ``rows`` of v1 are committed."""
    deadline = time.monotonic() + 60
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = httpx.get(f"{proc.url}/v1/drift/{model}", timeout=10)
        if response.status_code == 200:
            body = response.json()
            if rows_committed(body) >= rows:
                return body
        time.sleep(0.2)
    raise AssertionError(
        f"{model}: timed out; last report {str(body)[:2000]}\n{proc.output()[-3000:]}"
    )
