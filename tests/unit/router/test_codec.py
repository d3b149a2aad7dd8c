from __future__ import annotations

import orjson
import pytest

from sluice.router.codec import (
    MISSING,
    CodecError,
    concat,
    parse_v1,
    parse_v2,
    read_answer,
    v1_body,
    v2_body,
)


def test_v1_rows_become_columns_with_gaps() -> None:
    frame = parse_v1({"instances": [{"customer_id": "C1", "tenure": 3}, {"customer_id": "C2"}]}, 8)
    assert frame.rows == 2
    assert frame.columns["tenure"] == [3, MISSING]
    assert frame.gaps(["tenure", "plan"]) == {"tenure": [1], "plan": [0, 1]}


def test_each_version_gets_only_its_features() -> None:
    frame = parse_v1({"instances": [{"customer_id": "C1", "tenure": 3, "plan": "basic"}]}, 8)
    assert orjson.loads(v1_body(frame, ["plan"])) == {"instances": [{"plan": "basic"}]}


def test_v2_keeps_the_clients_tensors_and_adds_filled_ones() -> None:
    body = {
        "id": "r1",
        "parameters": {"x": 1},
        "inputs": [
            {"name": "customer_id", "shape": [2, 1], "datatype": "BYTES", "data": [["C1"], ["C2"]]},
            {"name": "tenure", "shape": [2], "datatype": "FP32", "data": [1.5, 2.0]},
        ],
    }
    frame = parse_v2(body, 8)
    assert frame.columns["customer_id"] == ["C1", "C2"]
    frame.fill("plan", 0, "basic")
    frame.fill("plan", 1, "premium")
    sent = orjson.loads(v2_body(frame, ["tenure", "plan"], {"plan": "BYTES"}))
    assert sent["id"] == "r1"
    assert sent["parameters"] == {"x": 1}
    assert sent["inputs"][0] == body["inputs"][1]
    assert sent["inputs"][1] == {
        "name": "plan",
        "shape": [2, 1],
        "datatype": "BYTES",
        "data": ["basic", "premium"],
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": "x"}, "'inputs'"),
        ({"inputs": []}, "no inputs"),
        ({"inputs": [{"name": "a", "shape": [1, 2], "data": [1, 2]}]}, r"\[N\] or \[N, 1\]"),
        ({"inputs": [{"name": "a", "shape": [2], "data": [1]}]}, "needs 2 values"),
        (
            {
                "inputs": [
                    {"name": "a", "shape": [1], "data": [1]},
                    {"name": "b", "shape": [2], "data": [1, 2]},
                ]
            },
            "rows",
        ),
        ({"inputs": [{"name": "a", "shape": [9], "data": [1] * 9}]}, "over the limit of 8"),
    ],
)
def test_bad_v2_requests_are_refused(body: object, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        parse_v2(body, 8)


@pytest.mark.parametrize(
    ("body", "message"),
    [({}, "instances"), ({"instances": [1]}, "instance 0"), ({"instances": []}, "no rows")],
)
def test_bad_v1_requests_are_refused(body: object, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        parse_v1(body, 8)


def test_answers_give_the_positive_class_score() -> None:
    v1 = b'{"predictions":[{"label":"yes","probabilities":{"no":0.25,"yes":0.75}}]}'
    assert read_answer("v1", v1, ["no", "yes"]) == (["yes"], [0.75])
    multi = b'{"predictions":[{"label":"b","probabilities":{"a":0.2,"b":0.5,"c":0.3}}]}'
    assert read_answer("v1", multi, ["a", "b", "c"]) == (["b"], [0.5])
    with pytest.raises(CodecError):
        read_answer("v2", b'{"outputs": []}', None)


def test_concat_keeps_the_clients_datatype_only_where_every_copy_agrees() -> None:
    def tensor(name: str, datatype: str, data: list[object]) -> dict[str, object]:
        return {"name": name, "shape": [len(data), 1], "datatype": datatype, "data": data}

    a = parse_v2({"inputs": [tensor("x", "FP32", [1.5]), tensor("y", "INT64", [2])]}, 8)
    b = parse_v2({"inputs": [tensor("x", "FP32", [[2.5], [3.5]]), tensor("y", "FP64", [4, 5])]}, 8)
    c = parse_v2({"inputs": [tensor("y", "INT64", [6])]}, 8)
    c.fill("x", 0, 9.0)  # looked up by the router: no client tensor
    body = orjson.loads(v2_body(concat([a, b], ["x", "y"]), ["x", "y"], {"x": "FP64", "y": "FP64"}))
    assert body["inputs"] == [
        tensor("x", "FP32", [1.5, 2.5, 3.5]),
        tensor("y", "FP64", [2, 4, 5]),  # INT64 and FP64 sent: the version's datatype
    ]
    body = orjson.loads(v2_body(concat([a, c], ["x", "y"]), ["x", "y"], {"x": "FP64", "y": "FP64"}))
    assert body["inputs"] == [tensor("x", "FP64", [1.5, 9.0]), tensor("y", "INT64", [2, 6])]
