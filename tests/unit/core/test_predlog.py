from __future__ import annotations

import doctest

import pytest

from sluice.core import predlog
from sluice.core.predlog import (
    PredictionRecord,
    PredlogFormatError,
    decode,
    encode,
    parse_stream_key,
    stream_key,
)


def test_round_trip_keeps_every_field() -> None:
    record = PredictionRecord(
        request_id="abc",
        timestamp=1_700_000_000.25,
        version="v2",
        role="shadow",
        features={"tenure": [1.5, None], "plan": ["basic", "premium"]},
        labels=["0", "1"],
        scores=[0.1, 0.8],
        latency_ms=0.42,
    )
    assert decode(encode(record)) == record
    assert record.row_ids() == ["abc/0", "abc/1"]


def test_single_row_id_is_the_request_id() -> None:
    record = PredictionRecord("abc", 0.0, "v1", "primary", {"a": [1]}, [1], [0.7], 1.0)
    assert record.row_ids() == ["abc"]


def test_stream_key_is_hash_tagged_per_model() -> None:
    assert stream_key("churn") == "sluice:predlog:{churn}"


def test_a_spread_log_has_a_stream_per_shard_each_with_its_own_hash_tag() -> None:
    keys = [stream_key("churn-eu", shard) for shard in range(3)]
    assert keys == ["sluice:predlog:{churn-eu}", "sluice:predlog:{churn-eu~1}",
                    "sluice:predlog:{churn-eu~2}"]  # fmt: skip
    assert [parse_stream_key(k) for k in keys] == [
        ("churn-eu", 0),
        ("churn-eu", 1),
        ("churn-eu", 2),
    ]
    assert doctest.testmod(predlog).failed == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({b"v": b"9"}, "schema version"),
        ({b"v": b"1", b"rid": b"a"}, "broken"),
        ({b"v": b"1", b"rid": b"a", b"ts": b"1", b"ver": b"v1", b"role": b"other"}, "role"),
    ],
)
def test_unknown_or_broken_entries_are_refused(fields: dict[bytes, bytes], message: str) -> None:
    with pytest.raises(PredlogFormatError, match=message):
        decode(fields)
