"""Decoded request tensors -> the runtime's feed, checked against the model card's schema.

Pure functions of plain values. Every problem is a ``ValidationError`` whose message names
the input (feature) and, where it helps, the row: the caller turns it into a 4xx.

What a feature accepts follows its training dtype (``FeatureSpec.dtype``), then the value is
cast to the element type the ONNX graph declares for that input:

- ``float64``: any number datatype; integers only while a double holds them exactly (2**53);
- ``int64``: integer datatypes, or floats with no fraction;
- ``bool``: BOOL, or numbers that are 0 or 1;
- ``string`` (categorical): BYTES only.

NaN (``null``) passes only where ``allow_missing`` is set; infinity never does. A missing
category (``null`` where allowed) becomes the feature's training default, as the trainer
filled missing categories before fitting (ONNX strings cannot be missing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from sluice.core.registry import FeatureSpec
from sluice.model_server.codec import CodecError, JsonTensor, Tensor, datatype_of, infer_datatype

EXACT_INT_IN_DOUBLE = 2**53


class ValidationError(ValueError):
    """The request does not fit the model's inputs; the message names the field."""


class BatchTooLarge(ValidationError):
    """More rows than the server's ``max_batch_size``."""


class InputSpec(NamedTuple):
    """One model input: the card's feature and the element type the runtime wants for it."""

    name: str
    feature: FeatureSpec
    dtype: np.dtype[Any]

    @classmethod
    def of(cls, feature: FeatureSpec, dtype: np.dtype[Any]) -> InputSpec:
        return cls(feature.name, feature, dtype)


def check_batch(rows: int, max_batch_size: int) -> None:
    """Refuse empty batches and batches over the limit.

    >>> check_batch(64, 64)
    >>> check_batch(65, 64)
    Traceback (most recent call last):
    sluice.model_server.validation.BatchTooLarge: batch of 65 rows is over the limit of 64
    """
    if rows > max_batch_size:
        raise BatchTooLarge(f"batch of {rows} rows is over the limit of {max_batch_size}")
    if rows == 0:
        raise ValidationError("the batch has no rows")


def build_feed(
    inputs: Sequence[InputSpec], tensors: Mapping[str, Tensor], max_batch_size: int
) -> tuple[dict[str, np.ndarray], int]:
    """Tensors by name -> (feed of ``[N, 1]`` arrays in the runtime's types, N).

    Each tensor has shape ``[N]`` or ``[N, 1]`` and all share N. Numeric features sent as
    flat FP64/INT64 JSON (what nearly every client sends) are decoded and checked together
    in one array; anything else, and anything that fails those checks, goes feature by
    feature through ``coerce``, which says exactly what is wrong.
    """
    known = {spec.name for spec in inputs}
    unknown = [name for name in tensors if name not in known]
    if unknown:
        raise ValidationError(
            f"unknown input {_names(unknown)}; the model takes {_names([s.name for s in inputs])}"
        )
    missing = [spec.name for spec in inputs if spec.name not in tensors]
    if missing:
        raise ValidationError(f"missing input {_names(missing)}")
    rows = _rows(inputs, tensors, max_batch_size)
    feed = _fast_numeric(inputs, tensors, rows)
    for spec in inputs:
        if spec.name in feed:
            continue
        tensor = tensors[spec.name]
        if isinstance(tensor, JsonTensor):
            data = tensor.data
            if spec.dtype.kind == "O" and len(data) == rows and set(map(type, data)) == {str}:
                feed[spec.name] = np.array(tensor.data, dtype=object).reshape(rows, 1)
                continue
            try:
                tensor = tensor.decode(spec.name)
            except CodecError as exc:
                raise ValidationError(str(exc)) from None
        feed[spec.name] = coerce(spec, tensor.reshape(rows, 1))
    return feed, rows


def _rows(inputs: Sequence[InputSpec], tensors: Mapping[str, Tensor], limit: int) -> int:
    rows, first = -1, ""
    for spec in inputs:
        shape = tuple(tensors[spec.name].shape)
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise ValidationError(f"input {spec.name!r}: shape {list(shape)} is not [N] or [N, 1]")
        if rows < 0:
            rows, first = shape[0], spec.name
            check_batch(rows, limit)
        elif shape[0] != rows:
            raise ValidationError(
                f"input {spec.name!r} has {shape[0]} rows but {first!r} has {rows}"
            )
    return rows


_FAST_KINDS: dict[str, set[type]] = {"FP64": {float, int}, "INT64": {int}}


def _fast_numeric(
    inputs: Sequence[InputSpec], tensors: Mapping[str, Tensor], rows: int
) -> dict[str, np.ndarray]:
    """Flat FP64/INT64 JSON data of float/int features, decoded as one array.

    Numpy calls cost about a microsecond each however small the array, so the checks are
    per request, not per feature. Values parsed from JSON are always finite. Returns {}
    when a check fails, so that ``coerce`` finds and names the problem.
    """
    group: list[InputSpec] = []
    values: list[Any] = []
    whole: list[int] = []  # int64 features sent as FP64 (by place in group): no fractions
    for spec in inputs:
        tensor = tensors[spec.name]
        if (
            type(tensor) is not JsonTensor
            or tensor.datatype not in _FAST_KINDS
            or spec.dtype.kind != "f"
            or spec.feature.dtype not in ("float64", "int64")
            or len(tensor.data) != rows
            or not set(map(type, tensor.data)) <= _FAST_KINDS[tensor.datatype]
        ):
            continue
        data = tensor.data
        if tensor.datatype == "INT64":
            if max(data) > EXACT_INT_IN_DOUBLE or min(data) < -EXACT_INT_IN_DOUBLE:
                return {}
        elif spec.feature.dtype == "int64":
            whole.append(len(group))
        group.append(spec)
        values += data
    if not group:
        return {}
    matrix = np.array(values, dtype=np.float64).reshape(len(group), rows, 1)
    if whole and (matrix[whole] != np.trunc(matrix[whole])).any():
        return {}  # a fraction in an integer feature: ``coerce`` names it
    feed = {}
    for spec, column in zip(group, matrix, strict=True):
        if spec.dtype != column.dtype:
            with np.errstate(over="ignore"):
                column = column.astype(spec.dtype)
            if not np.isfinite(column).all():
                return {}
        feed[spec.name] = column
    return feed


def coerce(spec: InputSpec, arr: np.ndarray) -> np.ndarray:
    """One decoded column -> the runtime's element type, enforcing the feature's schema.

    >>> from sluice.core.registry import FeatureSpec as F
    >>> age = InputSpec.of(F(name="age", kind="numeric", dtype="int64"), np.dtype("float64"))
    >>> coerce(age, np.array([[31], [40]])).dtype.name
    'float64'
    >>> coerce(age, np.array([[31.5]]))
    Traceback (most recent call last):
    sluice.model_server.validation.ValidationError: input 'age': takes whole numbers, row 0 is 31.5
    """
    feature, name = spec.feature, spec.name
    if arr.dtype.kind == "O":
        if feature.kind != "categorical" and feature.dtype != "string":
            raise ValidationError(f"input {name!r}: is numeric, got BYTES (strings)")
        return _strings(spec, arr)
    if feature.kind == "categorical" or feature.dtype == "string":
        raise ValidationError(
            f"input {name!r}: is categorical, send BYTES (strings), got {datatype_of(arr.dtype)}"
        )
    if arr.dtype.kind == "b" and feature.dtype != "bool":
        raise ValidationError(f"input {name!r}: is a number, got BOOL")
    if feature.dtype == "int64" and arr.dtype.kind == "f":
        fractional = np.isfinite(arr) & (arr != np.trunc(arr))
        if fractional.any():
            row = int(np.argmax(fractional))
            raise ValidationError(
                f"input {name!r}: takes whole numbers, row {row} is {arr[row, 0]}"
            )
    elif feature.dtype == "bool" and arr.dtype.kind != "b":
        bad = (arr != 0) & (arr != 1)
        if arr.dtype.kind == "f":
            bad &= ~np.isnan(arr)
        if bad.any():
            row = int(np.argmax(bad))
            raise ValidationError(
                f"input {name!r}: takes true/false or 0/1, row {row} is {arr[row, 0]}"
            )
    if arr.dtype.kind in "iu" and spec.dtype.kind == "f" and arr.size:
        big = np.abs(arr.astype(np.float64)) > EXACT_INT_IN_DOUBLE
        if big.any():
            row = int(np.argmax(big))
            raise ValidationError(f"input {name!r}: row {row} is too large to convert exactly")
    if arr.dtype.kind == "f":
        _check_finite(feature, arr)
        if spec.dtype.kind in "iub" and not (np.abs(arr) < 2**63).all():
            raise ValidationError(f"input {name!r}: takes whole numbers below 2**63, no NaN")
    with np.errstate(over="ignore"):
        out = arr.astype(spec.dtype, copy=False)
    if out.dtype.kind == "f" and arr.dtype.kind == "f" and out.dtype != arr.dtype:
        _check_finite(feature, out)  # narrowing (FP64 -> float32) can overflow to inf
    return out


def _check_finite(feature: FeatureSpec, arr: np.ndarray) -> None:
    finite = np.isfinite(arr)
    if finite.all():
        return
    nan = np.isnan(arr)
    if nan.any() and not feature.allow_missing:
        row = int(np.argmax(nan))
        raise ValidationError(
            f"input {feature.name!r}: row {row} is missing (null/NaN) and this feature "
            "does not allow missing values"
        )
    inf = ~finite & ~nan
    if inf.any():
        raise ValidationError(
            f"input {feature.name!r}: row {int(np.argmax(inf))} is infinite "
            "(or too large for the model's input type)"
        )


def _strings(spec: InputSpec, arr: np.ndarray) -> np.ndarray:
    feature = spec.feature
    missing = [i for i, v in enumerate(arr.ravel()) if v is None]
    if missing:
        if not feature.allow_missing:
            raise ValidationError(
                f"input {feature.name!r}: row {missing[0]} is missing (null) and this feature "
                "does not allow missing values"
            )
        arr = arr.copy()
        arr[np.array(missing), 0] = str(feature.default) if feature.default is not None else ""
    return arr


def columns_from_instances(
    inputs: Sequence[InputSpec], instances: Any, max_batch_size: int
) -> dict[str, Tensor]:
    """KServe-V1 ``instances`` (a list of ``{feature: value}``) -> one tensor per feature."""
    if not isinstance(instances, list):
        raise ValidationError("'instances' must be a list of objects, one per row")
    check_batch(len(instances), max_batch_size)
    names = [spec.name for spec in inputs]
    wanted = set(names)
    for i, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise ValidationError(f"instance {i} must be an object of feature: value")
        if instance.keys() != wanted:
            missing = [n for n in names if n not in instance]
            if missing:
                raise ValidationError(f"instance {i} is missing feature {_names(missing)}")
            unknown = [k for k in instance if k not in wanted]
            raise ValidationError(
                f"instance {i} has unknown feature {_names(unknown)}; "
                f"the model takes {_names(names)}"
            )
    columns: dict[str, Tensor] = {}
    for name in names:
        values = [instance[name] for instance in instances]
        try:
            columns[name] = JsonTensor(infer_datatype(values), (len(values),), values)
        except CodecError:
            raise ValidationError(
                f"input {name!r}: values must all be numbers, all booleans or all strings"
            ) from None
    return columns


def _names(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names)
