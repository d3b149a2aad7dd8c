"""Fixtures for the feature store against real Redis: sources, a restartable Redis, a cluster."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pandas as pd
import pytest
import redis

from tests.support.procs import free_port, redis_on, redis_server_binary

T0 = pd.Timestamp("2026-01-01", tz="UTC")


def write_source(path: Path, rows: list[tuple[str, float, int, float]]) -> Path:
    """A Parquet source of (customer_id, days after T0, calls, spend) rows."""
    frame = pd.DataFrame(rows, columns=["customer_id", "day", "calls", "spend"])
    frame["event_timestamp"] = T0 + pd.to_timedelta(frame.pop("day"), unit="D")
    frame.to_parquet(path)
    return path


def definitions(path: Path, source: Path, *, ttl: str = "3650d") -> Path:
    path.write_text(
        f"""
views:
  - name: activity
    entity: {{join_key: customer_id, dtype: string}}
    ttl: {ttl}
    source: {{path: {source}}}
    features:
      - {{name: calls, dtype: int64}}
      - {{name: spend, dtype: float64}}
"""
    )
    return path


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    for _ in range(100):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real three-primary Redis Cluster on 127.0.0.1; yields the URL of one node."""
    root = tmp_path_factory.mktemp("cluster")
    ports = [_cluster_port() for _ in range(3)]
    cli = str(Path(redis_server_binary()).with_name("redis-cli"))
    with ExitStack() as stack:
        for port in ports:
            stack.enter_context(
                redis_on(
                    port,
                    root / str(port),
                    "--appendonly",
                    "no",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    f"nodes-{port}.conf",
                    "--cluster-node-timeout",
                    "3000",
                )
            )
        nodes = [f"127.0.0.1:{p}" for p in ports]
        subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        while True:
            infos = [redis.Redis(port=p).cluster("info") for p in ports]
            if all(
                i["cluster_state"] == "ok" and int(i["cluster_known_nodes"]) == 3 for i in infos
            ):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster not ok: {infos}")
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{ports[0]}/0"
