from __future__ import annotations

import gc

import numpy as np
import pytest

from sluice.core.predlog import PredictionRecord, encode
from sluice.drift_monitor.batch import decode_batch, infer_kinds


def record(rid: str, features: dict, rows: int = 2) -> dict[bytes, bytes]:
    return encode(PredictionRecord(rid, 5.0, "v1", "primary", features, ["1"] * rows,
                                   [0.7] * rows, 1.0))  # fmt: skip


def test_columns_are_built_across_entries() -> None:
    batch = decode_batch(
        [("1-0", record("a", {"x": [1, 2], "c": ["p", None]})),
         ("1-1", record("b", {"x": [3.5], "c": ["q"]}, rows=1))],
        {"x": "numeric", "c": "categorical"},
    )  # fmt: skip
    assert batch.columns["x"].tolist() == [1.0, 2.0, 3.5]
    assert batch.columns["c"].tolist() == ["p", None, "q"]
    assert batch.rows.tolist() == [2, 1] and batch.starts.tolist() == [0, 2]
    assert batch.request_ids == ["a", "b"] and batch.broken == 0


def test_broken_deleted_and_odd_entries_never_crash() -> None:
    batch = decode_batch(
        [
            ("1-0", record("a", {"x": [1, "oops"]})),  # a string in a numeric column
            ("1-1", {b"v": b"1", b"rid": b"broken"}),
            ("1-2", None),  # deleted from the stream meanwhile
            ("1-3", record("b", {"other": [1, 2]})),  # lacks the feature
        ],
        {"x": "numeric"},
    )
    assert batch.ids == ["1-0", "1-1", "1-2", "1-3"]  # all acknowledged
    assert batch.entry_ids == ["1-0", "1-3"] and batch.broken == 2
    assert np.isnan(batch.columns["x"][[1, 2, 3]]).all() and batch.columns["x"][0] == 1.0


def test_kinds_are_inferred_for_a_model_without_a_profile() -> None:
    assert infer_kinds([("1-0", record("a", {"x": [1, 2], "c": ["p", "q"]}))]) == {
        "x": "numeric",
        "c": "categorical",
    }


def test_an_entry_lacking_one_of_several_features_reads_as_missing_for_it() -> None:
    batch = decode_batch(
        [("1-0", record("a", {"x": [1, 2], "c": ["p", "q"]})),
         ("1-1", record("b", {"x": [3]}, rows=1)),
         ("1-2", record("c", {"x": [4], "c": ["r"]}, rows=1))],
        {"x": "numeric", "c": "categorical"},
    )  # fmt: skip
    assert batch.columns["x"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert batch.columns["c"].tolist() == ["p", "q", None, "r"]
    assert batch.broken == 0


@pytest.mark.parametrize("enabled", [True, False])
def test_decoding_leaves_the_garbage_collector_as_it_found_it(enabled: bool) -> None:
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        batch = decode_batch([("1-0", record("a", {"x": [1, 2]})), ("1-1", None)], {"x": "numeric"})
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
    assert batch.columns["x"].tolist() == [1.0, 2.0] and batch.broken == 1
