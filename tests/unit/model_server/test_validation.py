from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sluice.model_server.codec import JsonTensor
from sluice.model_server.validation import (
    BatchTooLarge,
    InputSpec,
    ValidationError,
    _fast_numeric,
    build_feed,
    columns_from_instances,
)
from tests.unit.model_server.conftest import FEATURES, INPUT_TYPES, ROW

INPUTS = [InputSpec.of(f, INPUT_TYPES[f.name]) for f in FEATURES]


def tensors(**changes: Any) -> dict[str, np.ndarray]:
    """One good row as [1, 1] tensors, with some replaced (None removes one)."""
    base: dict[str, np.ndarray] = {
        "age": np.array([[30]], dtype=np.int64),
        "charges": np.array([[70.5]]),
        "senior": np.array([[False]]),
        "plan": np.array([["basic"]], dtype=object),
        "region": np.array([["south"]], dtype=object),
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def test_a_good_row_becomes_the_runtime_types() -> None:
    feed, rows = build_feed(INPUTS, tensors(), 8)
    assert rows == 1
    assert {k: v.dtype for k, v in feed.items()} == INPUT_TYPES
    assert feed["age"].tolist() == [[30.0]]
    assert feed["senior"].tolist() == [[0.0]]


def test_flat_and_column_shapes_are_both_accepted() -> None:
    feed, rows = build_feed(INPUTS, tensors(age=np.array([30])), 8)
    assert rows == 1 and feed["age"].shape == (1, 1)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"age": None}, "missing input 'age'"),
        ({"colour": np.array([["red"]], dtype=object)}, "unknown input 'colour'; the model takes"),
        ({"age": np.array([["30"]], dtype=object)}, "input 'age': is numeric, got BYTES"),
        ({"plan": np.array([[1.0]])}, "input 'plan': is categorical, send BYTES"),
        ({"age": np.array([[30.5]])}, "input 'age': takes whole numbers, row 0 is 30.5"),
        ({"age": np.array([[True]])}, "input 'age': is a number, got BOOL"),
        ({"senior": np.array([[2]])}, "input 'senior': takes true/false or 0/1, row 0 is 2"),
        ({"age": np.array([[np.nan]])}, "input 'age': row 0 is missing .* does not allow"),
        ({"charges": np.array([[np.inf]])}, "input 'charges': row 0 is infinite"),
        ({"charges": np.array([[1e300]])}, "input 'charges': row 0 is infinite"),
        ({"charges": np.array([[2**60]])}, "input 'charges': row 0 is too large to convert"),
        ({"plan": np.array([[None]], dtype=object)}, "input 'plan': row 0 is missing"),
        ({"age": np.array([[30, 31]])}, r"input 'age': shape \[1, 2\] is not \[N\] or \[N, 1\]"),
        ({"age": np.array([[30], [31]])}, "input 'charges' has 1 rows but 'age' has 2"),
        ({"age": np.zeros((0, 1))}, "the batch has no rows"),
    ],
)
def test_bad_inputs_are_refused_naming_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        build_feed(INPUTS, tensors(**changes), 8)


def test_missing_values_pass_where_the_schema_allows_them() -> None:
    feed, _ = build_feed(
        INPUTS,
        tensors(charges=np.array([[np.nan]]), region=np.array([[None]], dtype=object)),
        8,
    )
    assert np.isnan(feed["charges"][0, 0])
    assert feed["region"].tolist() == [["north"]]  # the training default


def test_a_batch_over_the_limit_is_refused() -> None:
    with pytest.raises(BatchTooLarge, match="batch of 3 rows is over the limit of 2"):
        build_feed(INPUTS, {k: np.repeat(v, 3, axis=0) for k, v in tensors().items()}, 2)


def test_instances_become_columns() -> None:
    columns = columns_from_instances(INPUTS, [ROW, {**ROW, "age": 50.0}], 8)
    assert columns["age"] == JsonTensor("FP64", (2,), [30, 50.0])
    assert columns["senior"] == JsonTensor("BOOL", (2,), [False, False])
    assert columns["plan"] == JsonTensor("BYTES", (2,), ["basic", "basic"])
    feed, rows = build_feed(INPUTS, columns, 8)
    assert rows == 2 and feed["age"].tolist() == [[30.0], [50.0]]


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        ({"age": 1}, "'instances' must be a list"),
        ([1], "instance 0 must be an object"),
        (
            [ROW, {k: v for k, v in ROW.items() if k != "plan"}],
            "instance 1 is missing feature 'plan'",
        ),
        ([{**ROW, "colour": "red"}], "instance 0 has unknown feature 'colour'"),
        ([ROW, {**ROW, "age": "old"}], "input 'age': values must all be numbers"),
        ([ROW] * 3, "batch of 3 rows is over the limit of 2"),
    ],
)
def test_bad_instances_are_refused(instances: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        columns_from_instances(INPUTS, instances, 2)


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (JsonTensor("BYTES", (1, 1), ["a", "b"]), r"shape \[1, 1\] needs 1 values, data has 2"),
        (JsonTensor("FP64", (1,), [1.0, 2.0]), r"shape \[1\] needs 1 values, data has 2"),
        (JsonTensor("INT64", (1, 1), [2**60]), "too large to convert exactly"),
        (JsonTensor("FP64", (1, 1), [1.5]), "takes whole numbers, row 0 is 1.5"),
    ],
)
def test_json_tensors_are_checked_like_decoded_ones(tensor: JsonTensor, message: str) -> None:
    name = "plan" if tensor.datatype == "BYTES" else "age"
    with pytest.raises(ValidationError, match=message):
        build_feed(INPUTS, tensors(**{name: tensor}), 8)


def test_whole_numbers_in_fp64_beside_fractional_features_take_the_one_array_path() -> None:
    """What a router sends (every number as FP64, the metadata's datatype): an integer
    feature's whole values sit beside a float feature's fractions. The fast path decodes
    them as one array; only a fraction in the integer feature sends them to ``coerce``."""
    age, charges = INPUTS[0], INPUTS[1]
    assert (age.feature.dtype, charges.feature.dtype) == ("int64", "float64")
    good = {"age": JsonTensor("FP64", (2, 1), [30, 41]),
            "charges": JsonTensor("FP64", (2, 1), [70.5, 12.25])}  # fmt: skip
    feed = _fast_numeric([age, charges], good, 2)
    assert feed["age"].tolist() == [[30.0], [41.0]]
    assert feed["charges"].tolist() == [[70.5], [12.25]]
    bad = {**good, "age": JsonTensor("FP64", (2, 1), [30, 41.5])}
    assert _fast_numeric([age, charges], bad, 2) == {}
    one_row = {"age": JsonTensor("FP64", (1, 1), [41.5]),
               "charges": JsonTensor("FP64", (1, 1), [12.25])}  # fmt: skip
    with pytest.raises(ValidationError, match=r"takes whole numbers, row 0 is 41\.5"):
        build_feed(INPUTS, tensors(**one_row), 8)
