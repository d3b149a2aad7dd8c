"""Random bodies never make the server answer 500: bad input is always the caller's 4xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.model_server.codec import NUMPY_TYPES, JsonTensor
from sluice.model_server.validation import InputSpec, ValidationError, build_feed
from tests.unit.model_server.conftest import (
    FEATURES,
    INPUT_TYPES,
    Served,
    make_settings,
    serve,
    v2_body,
)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
homogeneous = (
    st.lists(st.text(max_size=3), max_size=4)
    | st.lists(st.integers(min_value=-5, max_value=2**64), max_size=4)
    | st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=4)
    | st.lists(st.booleans(), max_size=4)
)
datatypes = st.sampled_from([*NUMPY_TYPES, "FP128", ""]) | json_values
shapes = st.lists(st.integers(min_value=-1, max_value=3), max_size=3) | json_values


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    settings_ = make_settings(Path(tmp_path_factory.mktemp("registry")), max_batch_size=4)
    yield from serve(settings_)


@st.composite
def near_valid_v2(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request with some of its tensors' parts replaced by random ones."""
    body = v2_body()
    for tensor in body["inputs"]:
        if draw(st.booleans()):
            key = draw(st.sampled_from(["datatype", "shape", "data", "name", "parameters"]))
            strategy = {"datatype": datatypes, "shape": shapes}.get(
                key, homogeneous | st.lists(scalars, max_size=4) | json_values
            )
            tensor[key] = draw(strategy)
    if draw(st.booleans()):
        body[draw(st.sampled_from(["id", "outputs", "parameters", "inputs"]))] = draw(json_values)
    return body


def dumps(body: Any) -> bytes:
    """JSON with integers of any size (orjson stops at 64 bits; clients do not)."""
    return json.dumps(body).encode()


def check(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["error"]


@FUZZ
@given(body=json_values)
def test_any_json_body(served: Served, body: Any) -> None:
    check(served.client.post("/v2/models/churn/infer", content=dumps(body)))
    check(served.client.post("/v1/models/churn:predict", content=dumps(body)))


@FUZZ
@given(body=near_valid_v2())
def test_near_valid_v2_bodies(served: Served, body: dict[str, Any]) -> None:
    check(served.client.post("/v2/models/churn/infer", content=dumps(body)))


@FUZZ
@given(instances=st.lists(st.dictionaries(st.sampled_from([f.name for f in FEATURES]), scalars)))
def test_random_v1_instances(served: Served, instances: list[dict[str, Any]]) -> None:
    body = {"instances": instances}
    check(served.client.post("/v1/models/churn:predict", content=dumps(body)))


@FUZZ
@given(raw=st.binary(max_size=64), header=st.none() | st.text(alphabet="0123456789-x ", max_size=4))
def test_raw_bytes_and_binary_headers(served: Served, raw: bytes, header: str | None) -> None:
    headers = {} if header is None else {"inference-header-content-length": header}
    body = dumps(v2_body()) + raw if header is not None else raw
    check(served.client.post("/v2/models/churn/infer", content=body, headers=headers))


INPUTS = [InputSpec.of(f, INPUT_TYPES[f.name]) for f in FEATURES]
numbers = st.integers(min_value=-(2**64), max_value=2**64) | st.floats(
    allow_nan=False, allow_infinity=False
)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.integers(min_value=1, max_value=3),
    datatypes=st.tuples(st.sampled_from(["FP64", "INT64"]), st.sampled_from(["FP64", "INT64"])),
    data=st.data(),
)
def test_the_batched_numeric_path_agrees_with_feature_by_feature(
    rows: int, datatypes: tuple[str, str], data: st.DataObject
) -> None:
    """JSON numbers decoded together give what decoding each feature alone gives."""
    columns = {
        name: data.draw(st.lists(numbers, min_size=rows, max_size=rows))
        for name in ("age", "charges")
    }
    common: dict[str, Any] = {
        "senior": np.zeros(rows, dtype=np.bool_),
        "plan": np.array(["basic"] * rows, dtype=object),
        "region": np.array(["north"] * rows, dtype=object),
    }
    json_tensors = {
        name: JsonTensor(dt, (rows,), columns[name])
        for name, dt in zip(("age", "charges"), datatypes, strict=True)
    }
    decoded = {}
    for name, tensor in json_tensors.items():
        try:
            decoded[name] = tensor.decode(name)
        except ValueError:
            return  # not valid V2 data at all: covered elsewhere
    outcomes = []
    for tensors in ({**common, **json_tensors}, {**common, **decoded}):
        try:
            feed, _ = build_feed(INPUTS, tensors, 8)
            outcomes.append({k: v.tolist() for k, v in feed.items()})
        except ValidationError as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1]
