"""The prediction log on its own Redis Cluster (``SLUICE_ROUTER_PREDLOG_REDIS_URL`` and
``..._CLUSTER``): the router writes every answered request there, not into the routing
table's Redis, and a router told it without the cluster setting refuses to start."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import redis

from sluice.core.predlog import decode, stream_key
from tests.integration.router.conftest import MODEL, Stack, metric, wait_for
from tests.support.procs import free_port, running, sluice_command


def router_argv(stack: Stack, port: int) -> list[str]:
    return [*sluice_command(), "serve", "router", "--redis-url", stack.redis_url,
            "--registry", str(stack.registry.root), "--port", str(port)]  # fmt: skip


def logged(client: redis.Redis | redis.RedisCluster, prefix: str) -> list[str]:
    """Request ids starting with ``prefix`` in the model's stream on ``client``."""
    entries = client.xrange(stream_key(MODEL))
    return sorted(r for r in (decode(f).request_id for _, f in entries) if r.startswith(prefix))


def test_every_answer_is_logged_on_the_cluster_and_none_on_the_routing_redis(
    stack: Stack, redis_cluster: str, tmp_path: Path
) -> None:
    stack.route()
    port = free_port()
    env = {
        "SLUICE_ROUTER_PREDLOG_REDIS_URL": redis_cluster,
        "SLUICE_ROUTER_PREDLOG_REDIS_CLUSTER": "true",
    }
    wanted = [f"on-cluster-{i}" for i in range(8)]
    cluster = redis.RedisCluster.from_url(redis_cluster)
    single = redis.Redis.from_url(stack.redis_url)
    try:
        with running(
            router_argv(stack, port), log=tmp_path / "router.log", env=env,
            ready_url=f"http://127.0.0.1:{port}/readyz",
        ) as proc:  # fmt: skip
            for rid, customer in zip(wanted, stack.customers(len(wanted)), strict=True):
                answer = httpx.post(
                    f"{proc.url}/v1/models/{MODEL}:predict",
                    json={"instances": [{"customer_id": customer}]},
                    headers={"x-request-id": rid},
                    timeout=10,
                )
                assert answer.status_code == 200, answer.text
            wait_for(lambda: len(logged(cluster, "on-cluster-")) >= len(wanted), what="records")
            written = metric(proc.url or "", "sluice_router_predlog_records_total", model=MODEL)
        assert logged(cluster, "on-cluster-") == sorted(wanted)
        assert written == len(wanted)
        assert logged(single, "on-cluster-") == []
    finally:
        cluster.close()
        single.close()


def test_a_cluster_setting_without_its_url_is_refused_naming_both(stack: Stack) -> None:
    done = subprocess.run(
        router_argv(stack, free_port()),
        env={**os.environ, "SLUICE_ROUTER_PREDLOG_REDIS_CLUSTER": "true"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "SLUICE_ROUTER_PREDLOG_REDIS_CLUSTER=true needs SLUICE_ROUTER_PREDLOG_REDIS_URL" in (
        done.stdout + done.stderr
    )
