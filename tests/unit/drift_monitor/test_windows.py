from __future__ import annotations

import dataclasses

import numpy as np

from sluice.drift_monitor.batch import decode_batch
from sluice.drift_monitor.windows import ModelWindows, WindowSpec, parse_id, take
from tests.unit.drift_monitor.conftest import entries

KINDS = {"x": "numeric", "c": "categorical"}
SPEC = WindowSpec(size=100, seconds=60, side_cap=10_000)


def test_windows_close_by_count_at_entry_boundaries() -> None:
    windows = ModelWindows(SPEC)
    closed = windows.feed(decode_batch(entries(70, 3, seed=1), KINDS))  # type: ignore[arg-type]
    assert [w.sides[0].rows for w in closed] == [102, 102]  # 34 entries of 3 rows each
    assert windows.open["v1"].sides[0].rows == 6
    assert closed[0].last_id == "1033-0" and closed[1].first_id == "1034-0"


def test_windows_close_by_record_time_and_by_the_wall_clock() -> None:
    assert take(SPEC, (50,), 0.0, np.zeros(2, int), np.array([1, 1]), np.array([10.0, 61.0])) == (
        1,
        True,
    )
    windows = ModelWindows(SPEC)
    windows.feed(decode_batch(entries(5, 2, seed=1, ts=500.0), KINDS))  # type: ignore[arg-type]
    assert windows.expire(now=559.0) == []
    (late,) = windows.expire(now=560.0)
    assert late.sides[0].rows == 10 and not windows.open


def test_a_replayed_entry_is_skipped_by_the_key_that_committed_it() -> None:
    batch = decode_batch(entries(70, 3, seed=1), KINDS)  # type: ignore[arg-type]
    first = ModelWindows(SPEC)
    for window in first.feed(batch):
        first.committed(window)
    again = ModelWindows(SPEC, cursors=dict(first.cursors), indexes=dict(first.indexes))
    assert again.feed(batch) == []
    assert again.open["v1"].sides[0].rows == 6 and again.open["v1"].index == 2


def test_entries_are_acknowledged_only_behind_every_open_window() -> None:
    windows = ModelWindows(SPEC)
    windows.feed(decode_batch(entries(40, 3, seed=1), KINDS))  # type: ignore[arg-type]
    assert windows.ack_horizon() == {0: parse_id("1034-0")}  # the open window's first entry
    windows.expire(now=10_000.0)
    assert windows.ack_horizon() == {}


def test_two_versions_on_the_same_traffic_fill_a_pair_window() -> None:
    mixed = entries(40, 5, seed=1) + entries(40, 5, seed=2, version="v2", start_ms=2000)
    mixed.sort(key=lambda e: int(e[1][b"rid"].split(b"-")[1]))  # interleave by request
    windows = ModelWindows(SPEC)
    closed = windows.feed(decode_batch(mixed, KINDS))  # type: ignore[arg-type]
    pairs = [w for w in closed if w.key == "v1|v2"]
    assert pairs and min(s.rows for s in pairs[0].sides) >= 100
    assert {s.version for s in pairs[0].sides} == {"v1", "v2"}


def test_a_log_on_two_streams_fills_one_window_with_a_cursor_per_stream() -> None:
    # Two streams whose ids overlap (each Redis numbers its own): 20 entries of 3 rows each
    a = dataclasses.replace(decode_batch(entries(20, 3, seed=1), KINDS), shard=0)  # type: ignore[arg-type]
    b = dataclasses.replace(decode_batch(entries(20, 3, seed=2), KINDS), shard=1)  # type: ignore[arg-type]
    first = ModelWindows(SPEC)
    assert first.feed(a) == []
    (window,) = first.feed(b)  # 60 + 42 rows: the window closes inside the second stream
    assert window.sides[0].rows == 102
    assert window.firsts == {0: "1000-0", 1: "1000-0"}
    assert window.lasts == {0: "1019-0", 1: "1013-0"}
    assert window.first_id == "1000-0" and window.last_id == "1013-0@1"
    assert window.cursors() == {"v1": "1019-0", "v1@1": "1013-0"}
    # what the open window holds is on the second stream only: the first may all be acked
    assert first.ack_horizon() == {1: parse_id("1014-0")}
    first.committed(window)
    # a replica that replays both streams after a crash skips exactly the committed entries
    again = ModelWindows(SPEC, cursors=dict(first.cursors), indexes=dict(first.indexes))
    assert again.feed(b) == [] and again.feed(a) == []
    assert again.open["v1"].sides[0].rows == 18 and again.open["v1"].index == 1
    assert again.open["v1"].firsts == {1: "1014-0"}
