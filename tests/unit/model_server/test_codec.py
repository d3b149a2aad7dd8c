from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from sluice.model_server.codec import (
    NUMPY_TYPES,
    CodecError,
    datatype_of,
    decode_binary,
    decode_tensor,
    encode_binary,
    encode_tensor,
    infer_datatype,
)

SAMPLES: dict[str, list[Any]] = {
    "BOOL": [True, False, True, True],
    "UINT8": [0, 1, 200, 255],
    "UINT16": [0, 1, 2, 65535],
    "UINT32": [0, 1, 2, 2**32 - 1],
    "UINT64": [0, 1, 2, 2**64 - 1],
    "INT8": [-128, 0, 1, 127],
    "INT16": [-32768, 0, 1, 32767],
    "INT32": [-(2**31), 0, 1, 2**31 - 1],
    "INT64": [-(2**63), 0, 1, 2**63 - 1],
    "FP16": [0.5, -1.25, 2.0, 65504.0],
    "FP32": [0.1, -1.5, 3.25, 1e30],
    "FP64": [0.1, -1.5, 1e300, 5e-324],
    "BYTES": ["a", "", "ünïcode", "north"],
}


@pytest.mark.parametrize("datatype", list(NUMPY_TYPES))
def test_every_datatype_round_trips_through_json(datatype: str) -> None:
    arr = decode_tensor("x", datatype, [2, 2], SAMPLES[datatype])
    assert arr.shape == (2, 2)
    assert arr.dtype == NUMPY_TYPES[datatype]
    wire = orjson.loads(orjson.dumps(encode_tensor("x", arr), option=orjson.OPT_SERIALIZE_NUMPY))
    assert wire["datatype"] == datatype
    assert wire["shape"] == [2, 2]
    again = decode_tensor("x", wire["datatype"], wire["shape"], wire["data"])
    np.testing.assert_array_equal(again, arr)
    assert again.dtype == arr.dtype


@pytest.mark.parametrize("datatype", list(NUMPY_TYPES))
def test_every_datatype_round_trips_through_binary(datatype: str) -> None:
    arr = decode_tensor("x", datatype, [4], SAMPLES[datatype])
    again = decode_binary("x", datatype, [4], encode_binary(arr))
    np.testing.assert_array_equal(again, arr)
    assert again.dtype == arr.dtype


def test_binary_layout_is_little_endian_with_length_prefixed_strings() -> None:
    assert encode_binary(np.array([1], dtype=np.int32)) == b"\x01\x00\x00\x00"
    assert encode_binary(np.array(["ab"], dtype=object)) == b"\x02\x00\x00\x00ab"
    assert encode_binary(np.array([True, False])) == b"\x01\x00"


def test_nested_data_matching_the_shape_is_accepted() -> None:
    arr = decode_tensor("age", "FP64", [2, 1], [[31], [40.5]])
    assert arr.tolist() == [[31.0], [40.5]]


def test_null_decodes_to_nan_in_floats_and_none_in_bytes() -> None:
    assert np.isnan(decode_tensor("x", "FP32", [2], [1.0, None])[1])
    assert decode_tensor("x", "BYTES", [2], ["a", None]).tolist() == ["a", None]


@pytest.mark.parametrize(
    ("datatype", "shape", "data", "message"),
    [
        ("FP64", [2], [1.0, True], "FP64 data must be numbers"),
        ("FP64", [1], ["1.5"], "FP64 data must be numbers"),
        ("FP32", [1], [1e39], "out of range for FP32"),
        ("INT64", [2], [1, 2.5], "INT64 data must be integers"),
        ("INT32", [1], [2**31], "out of range for INT32"),
        ("UINT8", [1], [-1], "out of range for UINT8"),
        ("INT64", [1], [None], "INT64 data must be integers"),
        ("BOOL", [1], [1], "BOOL data must be true or false"),
        ("BYTES", [2], ["a", 1], "BYTES data must be strings"),
        ("FP64", [3], [1.0, 2.0], r"shape \[3\] needs 3 values, data has 2"),
        ("FP64", [2, 1], [[1.0], [2.0, 3.0]], r"nested data has shape \[2\]"),
        ("FP64", [1, 2], [[1.0], [2.0]], r"nested data has shape \[2, 1\]"),
        ("FP128", [1], [1.0], "datatype 'FP128' is not one of"),
        ("FP64", [1], "1.0", "data must be a list"),
    ],
)
def test_bad_tensors_are_refused_naming_the_input(
    datatype: str, shape: list[int], data: Any, message: str
) -> None:
    with pytest.raises(CodecError, match=rf"input 'x'.*{message}"):
        decode_tensor("x", datatype, shape, data)


def test_truncated_binary_is_refused() -> None:
    with pytest.raises(CodecError, match="do not hold 2 INT32 values"):
        decode_binary("x", "INT32", [2], b"\x01\x00\x00\x00")
    with pytest.raises(CodecError, match="truncated"):
        decode_binary("x", "BYTES", [1], b"\x05\x00\x00\x00ab")


def test_datatype_of_numpy_types() -> None:
    assert datatype_of(np.dtype(np.float32)) == "FP32"
    assert datatype_of(np.dtype("<U3")) == "BYTES"
    with pytest.raises(CodecError):
        datatype_of(np.dtype(np.complex64))


@pytest.mark.parametrize(
    ("values", "datatype"),
    [([1, 2], "INT64"), ([1, 2.5], "FP64"), ([None, 2.5], "FP64"), ([True], "BOOL"),
     (["a", None], "BYTES"), ([None], "FP64")],
)  # fmt: skip
def test_infer_datatype_of_json_values(values: list[Any], datatype: str) -> None:
    assert infer_datatype(values) == datatype


def test_infer_datatype_refuses_mixtures() -> None:
    with pytest.raises(CodecError):
        infer_datatype([1, "a"])
