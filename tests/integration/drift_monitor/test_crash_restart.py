"""SIGKILL of the real monitor mid-stream, then a restart: nothing lost, nothing counted twice."""

from __future__ import annotations

import signal
import threading
import time
from itertools import pairwise

import pytest
import redis

from sluice.core.predlog import stream_key
from tests.integration.drift_monitor.conftest import (
    MODEL,
    StartMonitor,
    report,
    rows_committed,
    wait_for,
)
from tests.integration.drift_monitor.traffic import Traffic

CHUNKS, CHUNK = 30, 700


@pytest.mark.parametrize("streams", [1, 3], ids=["one-stream", "spread-over-3"])
def test_killed_monitor_restarts_without_losing_or_double_counting(
    traffic: Traffic, start_monitor: StartMonitor, redis_url: str, streams: int
) -> None:
    traffic.streams = streams  # the router's SLUICE_ROUTER_PREDLOG_STREAMS
    options = {"window_size": 1000, "window_seconds": 2, "history_windows": 500}

    def write() -> None:
        for i in range(CHUNKS):
            traffic.send(CHUNK, seed=400 + i, per_entry=7, prefix=f"c{i}-")
            time.sleep(0.1)

    writer = threading.Thread(target=write)
    with start_monitor("first.log", **options) as first:
        writer.start()
        wait_for(first, lambda b: rows_committed(b) >= 3000)
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    client = redis.Redis.from_url(redis_url)
    killed_at = int(client.hget("sluice:drift:{churn}:rows", "v1") or 0)
    writer.join()
    total = CHUNKS * CHUNK
    assert killed_at < total, "the kill came after the whole stream was read"
    with start_monitor("second.log", **options) as second:
        body = wait_for(second, lambda b: rows_committed(b) >= total, timeout=60)
        time.sleep(1.0)  # anything counted twice would show up by now
        body = report(second)
        replayed = [line for line in second.output().splitlines() if "pending entries" in line]
    assert rows_committed(body) == total
    windows = sorted(body["versions"]["v1"]["history"], key=lambda w: w["index"])
    assert sum(w["rows"] for w in windows) == total
    assert [w["index"] for w in windows] == list(range(len(windows)))
    if streams == 1:  # one stream's windows follow each other in it
        for before, after in pairwise(windows):
            assert _id(before["last_id"]) < _id(after["first_id"]), (before, after)
    assert replayed and '"reading model churn (0 pending' not in replayed[0], replayed
    keys = [stream_key(MODEL, shard) for shard in range(streams)]
    pending = [client.xpending(key, "sluice-drift-monitor")["pending"] for key in keys]
    assert all(client.xlen(key) > 0 for key in keys)
    client.close()
    assert pending == [0] * streams


def _id(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)
