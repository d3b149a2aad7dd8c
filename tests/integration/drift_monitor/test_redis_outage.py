"""The real Redis stops mid-stream and comes back on the same port: nothing lost or doubled."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from itertools import pairwise
from pathlib import Path

import httpx
import pytest
import redis

from sluice.core.predlog import stream_key
from sluice.core.registry import ModelRegistry
from tests.integration.drift_monitor.conftest import (
    MODEL,
    StartMonitor,
    report,
    rows_committed,
    wait_for,
)
from tests.integration.drift_monitor.traffic import Traffic
from tests.support.procs import Process, free_port, redis_on

CHUNKS, CHUNK = 20, 700


class Server:
    """A persistent redis-server (AOF, fsync always) that can be stopped and started again."""

    def __init__(self, workdir: Path) -> None:
        self.port, self.workdir = free_port(), workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def run(self) -> AbstractContextManager[Process]:
        """Start it (again) on its port and wait until it answers."""
        durable = ("--appendonly", "yes", "--appendfsync", "always")
        return redis_on(self.port, self.workdir, *durable)


@pytest.fixture
def server(tmp_path: Path) -> Server:
    return Server(tmp_path / "redis")


@pytest.fixture
def redis_url(server: Server) -> Iterator[str]:
    """This module's Redis: one the test stops and starts again on the same port."""
    yield server.url


def test_a_redis_outage_mid_stream_loses_and_doubles_nothing(
    server: Server, start_monitor: StartMonitor, registry: ModelRegistry
) -> None:
    options = {"window_size": 1000, "window_seconds": 2, "history_windows": 500}
    total = CHUNKS * CHUNK
    with server.run() as first_redis:
        traffic = Traffic(registry, MODEL, "v1", server.url)
        outage, resume = threading.Event(), threading.Event()

        def write() -> None:
            for i in range(CHUNKS):
                if i == CHUNKS // 2:
                    outage.set()
                    resume.wait(60)
                traffic.send(CHUNK, seed=600 + i, per_entry=7, prefix=f"o{i}-")
                time.sleep(0.1)

        with start_monitor("outage.log", **options) as monitor:
            writer = threading.Thread(target=write)
            writer.start()
            assert outage.wait(60)
            time.sleep(0.5)  # the monitor is mid-window on what was written
            traffic.client.close()
            assert first_redis.stop(signal.SIGTERM) == 0  # shutdown rewrites nothing: AOF kept
            time.sleep(1.5)
            not_ready = httpx.get(f"{monitor.url}/readyz", timeout=5)
            with server.run():
                traffic.client = redis.Redis.from_url(server.url)
                resume.set()
                writer.join(60)
                body = wait_for(monitor, lambda b: rows_committed(b) >= total, timeout=60)
                time.sleep(1.0)  # anything counted twice would show up by now
                body = report(monitor)
                ready = httpx.get(f"{monitor.url}/readyz", timeout=5)
                client = redis.Redis.from_url(server.url)
                pending = client.xpending(stream_key(MODEL), "sluice-drift-monitor")
                client.close()
                traffic.close()
    assert not_ready.status_code == 503
    assert ready.status_code == 200
    assert rows_committed(body) == total
    windows = sorted(body["versions"]["v1"]["history"], key=lambda w: w["index"])
    assert sum(w["rows"] for w in windows) == total
    assert [w["index"] for w in windows] == list(range(len(windows)))
    for before, after in pairwise(windows):
        assert _id(before["last_id"]) < _id(after["first_id"]), (before, after)
    assert pending["pending"] == 0


def _id(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)
