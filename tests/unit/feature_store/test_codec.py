"""The packed value (codec.py)."""

from __future__ import annotations

import struct

import pytest

from sluice.feature_store.codec import (
    HEADER_SIZE,
    LAYOUT_VERSION,
    LayoutMismatch,
    check_value,
    decode,
    encode,
    event_micros,
)


def test_round_trip_keeps_types_nulls_and_the_timestamp() -> None:
    values = [42, 2**62, 0.1, 1e-300, "naïve ☕", True, None, -7]
    raw = encode(1_714_564_800_123_456, values)
    assert decode(raw) == (1_714_564_800_123_456, values)
    assert event_micros(raw) == 1_714_564_800_123_456


def test_header_is_version_then_big_endian_microseconds() -> None:
    # The Lua newer-wins script reads exactly this: byte 1, then '>i8' from byte 2.
    raw = encode(-5, [1])
    assert raw[0] == LAYOUT_VERSION
    assert struct.unpack(">q", raw[1:HEADER_SIZE]) == (-5,)
    assert raw[HEADER_SIZE:] == b"[1]"


def test_other_layout_versions_are_refused() -> None:
    with pytest.raises(LayoutMismatch):
        decode(b"\x02" + encode(0, [1])[1:])
    with pytest.raises(LayoutMismatch):
        decode(b"")


@pytest.mark.parametrize(
    ("dtype", "value", "stored"),
    [("float64", 3, 3.0), ("float64", 2.5, 2.5), ("int64", -3, -3), ("string", "a", "a"),
     ("bool", False, False), ("int64", None, None)],
)  # fmt: skip
def test_values_that_fit_their_dtype(dtype: str, value: object, stored: object) -> None:
    assert check_value(dtype, value) == stored
    assert type(check_value(dtype, value)) is type(stored)


@pytest.mark.parametrize(
    ("dtype", "value", "message"),
    [("int64", 1.5, "expected int64, got float"), ("int64", True, "expected int64, got bool"),
     ("int64", 2**63, "does not fit in int64"), ("float64", "1", "expected float64, got str"),
     ("float64", float("nan"), "not a finite number"), ("string", 3, "expected string"),
     ("bool", 1, "expected bool, got int")],
)  # fmt: skip
def test_values_that_do_not_fit_say_why(dtype: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_value(dtype, value)
