"""Open Inference Protocol (V2) tensors <-> numpy arrays: pure functions of plain values.

A V2 tensor is ``{"name", "datatype", "shape", "data"}`` with ``data`` flattened row-major
(nested lists are accepted when their nesting matches ``shape``). Decoding is strict: the
elements must be what ``datatype`` says (no booleans in an FP64 tensor, no numbers in a
BYTES tensor, integers in range for INT32), because a silently converted value is a wrong
prediction nobody notices. JSON ``null`` in an FP tensor decodes to NaN and in a BYTES
tensor to None; whether a feature may be missing is the validation module's decision.

Triton's binary tensor data extension is supported too: the raw bytes of a tensor follow
the JSON header, little-endian, BYTES elements each prefixed by a 4-byte length.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

NUMPY_TYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
"""Every V2 datatype and the numpy type its data decodes to."""

_BY_NUMPY = {dtype: name for name, dtype in NUMPY_TYPES.items() if name != "BYTES"}
_INT_RANGES = {
    name: (int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
    for name, dtype in NUMPY_TYPES.items()
    if dtype.kind in "iu"
}
_NOT_NUMBERS = (bool, str, list, dict)


class CodecError(ValueError):
    """A tensor's datatype, shape or data is not valid V2; the message names the tensor."""


class JsonTensor(NamedTuple):
    """A V2 tensor as it arrived in JSON, not decoded yet: the validation module decodes
    the common numeric case for all features at once, which is much faster than one by one."""

    datatype: str
    shape: tuple[int, ...]
    data: list[Any]

    def decode(self, name: str) -> np.ndarray:
        return decode_tensor(name, self.datatype, self.shape, self.data)


Tensor = np.ndarray | JsonTensor
"""An input tensor: decoded (binary data) or still JSON."""


def datatype_of(dtype: np.dtype[Any]) -> str:
    """The V2 datatype for a numpy dtype: ``float32`` -> FP32, strings and objects -> BYTES."""
    if dtype.kind in "OUS":
        return "BYTES"
    try:
        return _BY_NUMPY[dtype.newbyteorder("=")]
    except KeyError:
        raise CodecError(f"numpy type {dtype} has no V2 datatype") from None


def check_shape(name: str, shape: Any) -> tuple[int, ...]:
    """A V2 shape is a list of non-negative integers."""
    if type(shape) is not list or not set(map(type, shape)) <= {int} or min(shape, default=0) < 0:
        raise CodecError(f"input {name!r}: shape must be a list of non-negative integers")
    return tuple(shape)


def decode_tensor(name: str, datatype: str, shape: Sequence[int], data: Any) -> np.ndarray:
    """JSON ``data`` -> an array of ``shape`` and the numpy type of ``datatype``.

    >>> decode_tensor("age", "FP32", [2, 1], [31, 40.5]).tolist()
    [[31.0], [40.5]]
    >>> decode_tensor("n", "INT32", [2], [1, 2.5])
    Traceback (most recent call last):
    sluice.model_server.codec.CodecError: input 'n': INT32 data must be integers
    """
    target = NUMPY_TYPES.get(datatype) if isinstance(datatype, str) else None
    if target is None:
        raise CodecError(
            f"input {name!r}: datatype {datatype!r} is not one of {', '.join(NUMPY_TYPES)}"
        )
    if not isinstance(data, list):
        raise CodecError(f"input {name!r}: data must be a list")
    flat = _flatten(name, data, shape) if data and type(data[0]) is list else data
    if len(flat) != math.prod(shape):
        raise CodecError(
            f"input {name!r}: shape {list(shape)} needs {math.prod(shape)} values, "
            f"data has {len(flat)}"
        )
    if datatype == "BYTES":
        arr = _decode_bytes(name, flat)
    elif datatype == "BOOL":
        arr = _decode_bool(name, flat)
    elif datatype.startswith("FP"):
        arr = _decode_float(name, datatype, flat, target)
    else:
        arr = _decode_int(name, datatype, flat, target)
    return arr.reshape(shape)


def _flatten(name: str, data: list[Any], shape: Sequence[int]) -> list[Any]:
    try:
        arr = np.array(data, dtype=object)
    except ValueError:
        raise CodecError(f"input {name!r}: nested data is ragged") from None
    if arr.shape != tuple(shape):
        raise CodecError(
            f"input {name!r}: nested data has shape {list(arr.shape)}, shape says {list(shape)}"
        )
    flat: list[Any] = arr.ravel().tolist()
    return flat


def _decode_bytes(name: str, flat: list[Any]) -> np.ndarray:
    kinds = set(map(type, flat))
    if not kinds <= {str, type(None)}:
        raise CodecError(f"input {name!r}: BYTES data must be strings")
    arr = np.empty(len(flat), dtype=object)
    arr[:] = flat
    return arr


def _decode_bool(name: str, flat: list[Any]) -> np.ndarray:
    if not set(map(type, flat)) <= {bool}:
        raise CodecError(f"input {name!r}: BOOL data must be true or false")
    return np.array(flat, dtype=np.bool_)


def _decode_float(name: str, datatype: str, flat: list[Any], target: np.dtype[Any]) -> np.ndarray:
    kinds = set(map(type, flat))
    if not kinds <= {float, int, type(None)}:
        raise CodecError(f"input {name!r}: {datatype} data must be numbers (or null)")
    if type(None) in kinds:
        flat = [math.nan if v is None else v for v in flat]
    try:
        wide = np.array(flat, dtype=np.float64)
    except OverflowError:
        raise CodecError(f"input {name!r}: a value is out of range for {datatype}") from None
    if target == wide.dtype:
        return wide
    with np.errstate(over="ignore"):
        arr = wide.astype(target)
    if np.isinf(arr).any() and not np.isinf(wide).any():
        raise CodecError(f"input {name!r}: a value is out of range for {datatype}")
    return arr


def _decode_int(name: str, datatype: str, flat: list[Any], target: np.dtype[Any]) -> np.ndarray:
    if not set(map(type, flat)) <= {int}:
        raise CodecError(f"input {name!r}: {datatype} data must be integers")
    low, high = _INT_RANGES[datatype]
    if flat and (min(flat) < low or max(flat) > high):
        raise CodecError(f"input {name!r}: a value is out of range for {datatype}")
    return np.array(flat, dtype=target)


def infer_datatype(values: list[Any]) -> str:
    """The V2 datatype a list of JSON scalars reads as (for the V1 API's instances).

    >>> infer_datatype([1, 2]), infer_datatype([1, 2.5, None]), infer_datatype(["a", None])
    ('INT64', 'FP64', 'BYTES')
    """
    kinds = set(map(type, values)) - {type(None)}
    if kinds == {bool}:
        return "BOOL"
    if kinds == {int}:
        return "INT64"
    if kinds and kinds <= {int, float}:
        return "FP64"
    if kinds == {str} or not kinds:
        return "BYTES" if kinds else "FP64"
    raise CodecError("values mix types")


def encode_tensor(name: str, arr: np.ndarray) -> dict[str, Any]:
    """An array -> a V2 output tensor; numeric data stays a numpy array (orjson writes it)."""
    datatype = datatype_of(arr.dtype)
    if datatype == "BYTES":
        data: Any = [v.decode() if isinstance(v, bytes) else str(v) for v in arr.ravel()]
    else:
        data = np.ascontiguousarray(arr).ravel()
    return {"name": name, "datatype": datatype, "shape": list(arr.shape), "data": data}


# Triton's binary tensor data extension ------------------------------------------------


def decode_binary(name: str, datatype: str, shape: Sequence[int], raw: bytes) -> np.ndarray:
    """Raw little-endian tensor bytes -> an array (BYTES: 4-byte length + bytes each).

    >>> decode_binary("x", "INT32", [2], b"\\x01\\x00\\x00\\x00\\x02\\x00\\x00\\x00").tolist()
    [1, 2]
    """
    target = NUMPY_TYPES.get(datatype)
    if target is None:
        raise CodecError(f"input {name!r}: datatype {datatype!r} is not a V2 datatype")
    count = math.prod(shape)
    if datatype != "BYTES":
        if len(raw) != count * target.itemsize:
            raise CodecError(
                f"input {name!r}: {len(raw)} bytes of binary data do not hold "
                f"{count} {datatype} values"
            )
        return np.frombuffer(raw, dtype=target.newbyteorder("<")).astype(target).reshape(shape)
    items: list[Any] = []
    pos = 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise CodecError(f"input {name!r}: binary BYTES data is truncated")
        (size,) = struct.unpack_from("<I", raw, pos)
        chunk = raw[pos + 4 : pos + 4 + size]
        if len(chunk) != size:
            raise CodecError(f"input {name!r}: binary BYTES data is truncated")
        try:
            items.append(chunk.decode())
        except UnicodeDecodeError:
            raise CodecError(f"input {name!r}: BYTES elements must be UTF-8") from None
        pos += 4 + size
    if len(items) != count:
        raise CodecError(
            f"input {name!r}: shape {list(shape)} needs {count} values, data has {len(items)}"
        )
    return _decode_bytes(name, items).reshape(shape)


def encode_binary(arr: np.ndarray) -> bytes:
    """An array -> raw little-endian bytes as the binary extension lays them out."""
    if datatype_of(arr.dtype) != "BYTES":
        return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
    parts = []
    for value in arr.ravel():
        raw = value if isinstance(value, bytes) else str(value).encode()
        parts.append(struct.pack("<I", len(raw)) + raw)
    return b"".join(parts)
