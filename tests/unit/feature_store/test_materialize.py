"""Materialisation's pure parts (materialize.py): window, latest per entity, shards, rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sluice.feature_store.backends import Catalog
from sluice.feature_store.keys import shard_of
from sluice.feature_store.materialize import advances, latest_rows, to_rows, window_start
from tests.unit.feature_store.fakes import view

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
VIEW = view("v", [("n", "int64"), ("x", "float64"), ("s", "string"), ("b", "bool")], ttl=1000)


def frame(ids: list[str], offsets: list[float], n: list[object]) -> pd.DataFrame:
    size = len(ids)
    return pd.DataFrame(
        {
            "customer_id": ids,
            "event_timestamp": pd.to_datetime([T0 + o for o in offsets], unit="s", utc=True),
            "n": n,
            "x": [0.5] * size,
            "s": ["a"] * size,
            "b": [True] * size,
        }
    )


def test_latest_row_per_entity_in_a_half_open_window() -> None:
    source = frame(["a", "a", "a", "b", "b"], [0, 10, 20, 5, 30], [1, 2, 3, 4, 5])
    got = latest_rows(source, VIEW, T0, T0 + 20, None)
    assert dict(zip(got["customer_id"], got["n"], strict=True)) == {"a": 2, "b": 4}
    assert latest_rows(source, VIEW, T0 + 20, T0 + 30, None)["n"].tolist() == [3]


def test_ties_go_to_the_later_row_like_the_offline_join() -> None:
    source = frame(["a", "a"], [5, 5], [1, 2])
    assert latest_rows(source, VIEW, T0, T0 + 10, None)["n"].tolist() == [2]


def test_shards_split_entities_exactly_once() -> None:
    ids = [f"C{i:04d}" for i in range(300)]
    source = frame(ids, [1.0] * 300, list(range(300)))
    parts = [latest_rows(source, VIEW, T0, T0 + 10, (i, 4)) for i in range(4)]
    seen = sorted(e for part in parts for e in part["customer_id"])
    assert seen == ids
    assert all(shard_of(e, 4) == i for i, p in enumerate(parts) for e in p["customer_id"])


def test_rows_are_plain_python_values_with_nulls() -> None:
    source = frame(["a", "b"], [0, 1.5], [7, None])
    source["b"] = pd.array([True, None], dtype="boolean")
    source["s"] = ["a", None]
    source.loc[1, "x"] = np.nan
    rows = to_rows(source, VIEW)
    assert rows == [
        ("a", T0 * 1_000_000, [7, 0.5, "a", True]),
        ("b", T0 * 1_000_000 + 1_500_000, [None, None, None, None]),
    ]
    assert type(rows[0][2][0]) is int and type(rows[0][1]) is int


def test_incremental_windows_resume_and_never_leave_gaps() -> None:
    catalog = Catalog(watermarks={"v|0/2": T0 + 50.0, "v|1/2": T0 + 40.0})
    assert window_start(VIEW, catalog, T0 + 100.0, (0, 2)) == T0 + 50.0
    assert window_start(VIEW, catalog, T0 + 100.0, None) == T0 + 40.0  # oldest shard
    assert window_start(VIEW, catalog, T0 + 100.0, (0, 3)) == T0 + 40.0
    assert window_start(VIEW, Catalog(), T0 + 5000.0, None) == T0 + 4000.0  # end - ttl
    assert advances(T0 + 40.0, T0 + 40.0, T0 + 60.0)
    assert not advances(T0 + 40.0, T0 + 41.0, T0 + 60.0)  # would leave [40, 41) behind
