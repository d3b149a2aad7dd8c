from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest

from sluice.model_server.codec import CodecError, JsonTensor
from sluice.model_server.protocol import (
    InferRequest,
    infer_response,
    parse_infer_request,
    select_outputs,
    split_body,
)

AGE = {"name": "age", "shape": [2, 1], "datatype": "INT64", "data": [30, 40]}


def test_json_inputs_stay_json_until_validation() -> None:
    request = parse_infer_request({"id": "r1", "inputs": [AGE], "parameters": {"x": 1}})
    assert request.id == "r1"
    assert request.inputs == {"age": JsonTensor("INT64", (2, 1), [30, 40])}
    assert request.outputs is None and request.parameters == {"x": 1}


def test_binary_inputs_are_cut_from_the_tail_in_order() -> None:
    doc = {
        "inputs": [
            {"name": "a", "shape": [2], "datatype": "INT32", "parameters": {"binary_data_size": 8}},
            {"name": "b", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}},
        ]
    }
    tail = struct.pack("<2i", 7, 8) + struct.pack("<I", 2) + b"hi"
    request = parse_infer_request(doc, tail)
    assert request.inputs["a"].tolist() == [7, 8]  # type: ignore[union-attr]
    assert request.inputs["b"].tolist() == ["hi"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("doc", "tail", "message"),
    [
        ([], b"", "must be a JSON object"),
        ({"inputs": [AGE], "id": 5}, b"", "'id' must be a string"),
        ({"inputs": {}}, b"", "'inputs' must be a non-empty list"),
        ({"inputs": [AGE, AGE]}, b"", "input 'age' is given twice"),
        ({"inputs": [{"shape": [1]}]}, b"", r"inputs\[0\] must be an object with a string 'name'"),
        ({"inputs": [{**AGE, "shape": [-1]}]}, b"", "shape must be a list of non-negative"),
        ({"inputs": [{**AGE, "shape": [True]}]}, b"", "shape must be a list of non-negative"),
        ({"inputs": [{**AGE, "datatype": "INT128"}]}, b"", "datatype 'INT128' is not one of"),
        ({"inputs": [{**AGE, "datatype": ["FP64"]}]}, b"", "datatype .* is not one of"),
        ({"inputs": [{**AGE, "data": 3}]}, b"", "data must be a list"),
        ({"inputs": [AGE], "parameters": []}, b"", "'parameters' must be an object"),
        ({"inputs": [AGE], "outputs": {"name": "label"}}, b"", "'outputs' must be a list"),
        ({"inputs": [AGE], "outputs": [{"name": 1}]}, b"", r"outputs\[0\] must be an object"),
        (
            {"inputs": [AGE], "parameters": {"binary_data_output": "yes"}},
            b"",
            "binary_data_output must be true or false",
        ),
        ({"inputs": [AGE]}, b"xx", "2 bytes of binary data belong to no input"),
        (
            {"inputs": [{**AGE, "parameters": {"binary_data_size": 16}}]},
            b"x" * 8,
            "binary data is shorter than binary_data_size",
        ),
        (
            {"inputs": [{**AGE, "parameters": {"binary_data_size": -1}}]},
            b"",
            "binary_data_size must be a non-negative integer",
        ),
    ],
)
def test_bad_requests_are_refused(doc: Any, tail: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        parse_infer_request(doc, tail)


def test_split_body_needs_a_header_that_fits() -> None:
    assert split_body(b"{}abc", "2") == (b"{}", b"abc")
    with pytest.raises(CodecError, match="does not fit"):
        split_body(b"{}", "10")
    with pytest.raises(CodecError, match="does not fit"):
        split_body(b"{}", "-1")


def test_outputs_default_to_all_and_honour_binary_flags() -> None:
    everything = InferRequest(None, {}, None, binary_output=True)
    assert select_outputs(everything, ["label", "probabilities"]) == {
        "label": True,
        "probabilities": True,
    }
    request = parse_infer_request(
        {
            "inputs": [AGE],
            "parameters": {"binary_data_output": True},
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": False}}],
        }
    )
    assert select_outputs(request, ["label", "probabilities"]) == {"probabilities": False}


def test_infer_response_json_and_binary() -> None:
    outputs = {"label": np.array(["yes", "no"], dtype=object), "p": np.array([[0.5], [0.25]])}
    doc, tail = infer_response("m", "v", "id1", outputs, {"label": False, "p": True})
    assert doc["model_name"] == "m" and doc["model_version"] == "v" and doc["id"] == "id1"
    label, p = doc["outputs"]
    assert label == {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["yes", "no"]}
    assert p == {"name": "p", "datatype": "FP64", "shape": [2, 1],
                 "parameters": {"binary_data_size": 16}}  # fmt: skip
    assert tail == struct.pack("<2d", 0.5, 0.25)
