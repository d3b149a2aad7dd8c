from __future__ import annotations

import struct
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from tests.unit.model_server.conftest import (
    ROW,
    FakeRuntime,
    Served,
    make_settings,
    serve,
    v2_body,
    wait_ready,
)

INFER = "/v2/models/churn/infer"


def as_fp64(body: dict[str, Any]) -> dict[str, Any]:
    body["inputs"][0]["datatype"] = "FP64"
    return body


def test_health_and_server_metadata(served: Served) -> None:
    client = served.client
    assert client.get("/livez").json() == {"status": "live"}
    assert client.get("/readyz").json()["status"] == "ready"
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    meta = client.get("/v2").json()
    assert meta["name"] == "sluice-model-server"
    assert "binary_tensor_data" in meta["extensions"]


@pytest.mark.parametrize("path", ["/v2/models/churn", "/v2/models/churn/versions/v1"])
def test_model_metadata_lists_inputs_with_the_runtime_datatypes(served: Served, path: str) -> None:
    meta = served.client.get(path).json()
    assert meta["name"] == "churn" and meta["versions"] == ["v1"]
    assert meta["platform"] == "onnxruntime"
    assert meta["inputs"][:2] == [
        {"name": "age", "datatype": "FP64", "shape": [-1, 1]},
        {"name": "charges", "datatype": "FP32", "shape": [-1, 1]},
    ]
    assert meta["outputs"] == [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
    ]
    ready = served.client.get(f"{path}/ready")
    assert ready.status_code == 200 and ready.json() == {"name": "churn", "ready": True}


def test_model_metadata_carries_what_a_router_needs(served: Served) -> None:
    params = served.client.get("/v2/models/churn").json()["parameters"]
    assert params["classes"] == ["0", "1"] and params["label"] == "churned"
    assert params["entity_key"] is None and params["feature_refs"] == []
    assert params["defaults"] == {"age": 40, "charges": 50.0, "senior": 0, "region": "north"}
    assert params["allow_missing"] == ["charges", "region"]


@pytest.mark.parametrize(
    "path",
    ["/v2/models/other", "/v2/models/churn/versions/v9", "/v2/models/churn/versions/v9/ready"],
)
def test_another_model_or_version_is_404_in_the_v2_shape(served: Served, path: str) -> None:
    response = served.client.get(path)
    assert response.status_code == 404
    assert isinstance(response.json()["error"], str)


def test_infer_returns_label_and_probabilities(served: Served) -> None:
    rows = [ROW, {**ROW, "age": 80}, {**ROW, "plan": "premium"}]
    response = served.client.post(INFER, json=v2_body(rows, id="req-1"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "churn" and body["model_version"] == "v1"
    assert body["id"] == "req-1"
    label, probabilities = body["outputs"]
    assert label == {"name": "label", "datatype": "INT64", "shape": [3], "data": [0, 1, 1]}
    assert probabilities["datatype"] == "FP32" and probabilities["shape"] == [3, 2]
    assert probabilities["data"] == pytest.approx([0.7, 0.3, 0.2, 0.8, 0.1, 0.9])


def test_versioned_infer_and_parameters_are_accepted(served: Served) -> None:
    body = v2_body(parameters={"content_type": "np"})
    body["inputs"][0]["parameters"] = {"content_type": "np"}
    response = served.client.post("/v2/models/churn/versions/v1/infer", json=body)
    assert response.status_code == 200, response.text


def test_the_id_is_generated_from_the_request_id_when_absent(served: Served) -> None:
    response = served.client.post(INFER, json=v2_body(), headers={"x-request-id": "abc"})
    assert response.json()["id"] == "abc"
    assert response.headers["x-request-id"] == "abc"
    assert served.client.post(INFER, json=v2_body()).json()["id"]


def test_the_outputs_filter_is_honoured(served: Served) -> None:
    body = v2_body(outputs=[{"name": "probabilities"}])
    outputs = served.client.post(INFER, json=body).json()["outputs"]
    assert [o["name"] for o in outputs] == ["probabilities"]
    bad = served.client.post(INFER, json=v2_body(outputs=[{"name": "logits"}]))
    assert bad.status_code == 422 and "unknown output 'logits'" in bad.json()["error"]


def test_flat_integer_and_float32_inputs_convert(served: Served) -> None:
    body = v2_body()
    body["inputs"][0] = {"name": "age", "shape": [1], "datatype": "INT32", "data": [30]}
    body["inputs"][1] = {"name": "charges", "shape": [1], "datatype": "FP32", "data": [70.5]}
    assert served.client.post(INFER, json=body).status_code == 200
    assert served.runtime.feeds[-1]["age"].tolist() == [[30.0]]


def test_binary_tensor_data_in_and_out(served: Served) -> None:
    """What tritonclient sends by default: binary inputs, binary_data_output."""
    doc = v2_body(parameters={"binary_data_output": True})
    age = doc["inputs"][0]
    del age["data"]
    age["parameters"] = {"binary_data_size": 8}
    head = orjson.dumps(doc)
    response = served.client.post(
        INFER,
        content=head + struct.pack("<q", 80),
        headers={
            "inference-header-content-length": str(len(head)),
            "content-type": "application/octet-stream",
        },
    )
    assert response.status_code == 200, response.text
    size = int(response.headers["inference-header-content-length"])
    meta = orjson.loads(response.content[:size])
    tail = response.content[size:]
    assert [o["parameters"]["binary_data_size"] for o in meta["outputs"]] == [8, 8]
    assert struct.unpack("<q", tail[:8]) == (1,)
    assert struct.unpack("<2f", tail[8:]) == pytest.approx((0.2, 0.8))


def test_v1_predict_and_model(served: Served) -> None:
    response = served.client.post(
        "/v1/models/churn:predict", json={"instances": [ROW, {**ROW, "plan": "premium"}]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "churn" and body["model_version"] == "v1"
    first, second = body["predictions"]
    assert first["label"] == "0" and first["probabilities"] == pytest.approx({"0": 0.7, "1": 0.3})
    assert second["label"] == "1"
    assert served.client.get("/v1/models/churn").json() == {"name": "churn", "ready": True}
    assert served.client.get("/v1/models/other").status_code == 404


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[]", 422, "must be a JSON object"),
        (b'{"inputs": []}', 422, "'inputs' must be a non-empty list"),
        (orjson.dumps(v2_body([ROW] * 5)), 413, "batch of 5 rows is over the limit of 4"),
        (b"x" * 5000, 413, "over the limit of 4096"),
    ],
)
def test_v2_errors_keep_the_protocol_shape(
    tmp_path: Path, content: bytes, status: int, message: str
) -> None:
    settings = make_settings(tmp_path, max_batch_size=4, max_body_bytes=4096)
    for served in serve(settings):
        response = served.client.post(INFER, content=content)
        assert response.status_code == status
        assert message in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (as_fp64(v2_body([{**ROW, "age": 30.5}])), "input 'age': takes whole numbers"),
        (v2_body([{**ROW, "age": None}]), "input 'age': INT64 data must be integers"),
        (v2_body([{**ROW, "plan": 3}]), "input 'plan': BYTES data must be strings"),
        (v2_body([{**ROW, "charges": None}]), None),
    ],
)
def test_v2_validation_errors_name_the_feature(
    served: Served, body: dict[str, Any], message: str | None
) -> None:
    response = served.client.post(INFER, json=body)
    if message is None:
        assert response.status_code == 200
    else:
        assert response.status_code == 422 and message in response.json()["error"]


def test_v1_errors_use_the_core_shape(served: Served) -> None:
    response = served.client.post("/v1/models/churn:predict", json={"instances": [{"age": 1}]})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert "instance 0 is missing feature 'charges'" in error["message"]
    malformed = served.client.post("/v1/models/churn:predict", content=b"{")
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "malformed_json"  # as every service says it


@pytest.fixture
def loading(tmp_path: Path) -> Iterator[tuple[Served, threading.Event]]:
    gate = threading.Event()
    for served in serve(make_settings(tmp_path), gate=gate):
        yield served, gate
        gate.set()


def test_not_ready_until_the_model_loaded_and_warmed_up(
    loading: tuple[Served, threading.Event],
) -> None:
    served, gate = loading
    client = served.client
    assert client.get("/livez").status_code == 200
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/readyz").status_code == 503
    assert client.get("/v2/health/ready").status_code == 503
    assert client.get("/v2/models/churn/ready").status_code == 503
    response = client.post(INFER, json=v2_body())
    assert response.status_code == 503 and "not ready" in response.json()["error"]
    assert served.runtime.feeds == []
    gate.set()
    wait_ready(client)
    assert len(served.runtime.feeds) == 1  # the warm-up
    assert client.post(INFER, json=v2_body()).status_code == 200


def test_metrics_count_requests_batches_and_scores(served: Served) -> None:
    served.client.post(INFER, json=v2_body([ROW, {**ROW, "age": 80}]))
    served.client.post(INFER, content=b"{")
    text = served.client.get("/metrics").text
    requests = "sluice_model_server_http_requests_total"
    assert f'{requests}{{code="200",endpoint="/v2/models/{{model}}/infer"}} 1.0' in text
    assert 'code="400",endpoint="/v2/models/{model}/infer"' in text
    assert 'sluice_model_server_model_info{model="churn",version="v1"} 1.0' in text
    assert 'sluice_model_server_batch_size_rows_count{model="churn",version="v1"} 1.0' in text
    assert 'sluice_model_server_batch_size_rows_sum{model="churn",version="v1"} 2.0' in text
    assert (
        'sluice_model_server_prediction_score_ratio_count{model="churn",version="v1"} 2.0' in text
    )
    assert (
        'sluice_model_server_prediction_score_ratio_bucket{le="0.5",model="churn",version="v1"} 1.0'
        in text
    )
    assert "sluice_model_server_inference_duration_seconds_count" in text


@pytest.mark.parametrize(
    "overrides",
    [
        {"inference_mode": "direct"},
        {"inference_mode": "thread", "inference_threads": 2},
        {"inference_mode": "auto", "thread_min_rows": 2},
    ],
    ids=["direct", "thread", "auto"],
)
def test_concurrent_requests_each_get_their_own_answer(
    tmp_path: Path, overrides: dict[str, Any]
) -> None:
    bodies = [v2_body([{**ROW, "age": age}] * (1 + age % 3), id=f"r{age}") for age in range(40)]
    for served in serve(make_settings(tmp_path, **overrides)):
        responses = served.client.post_concurrently(INFER, bodies)
        for age, response in enumerate(responses):
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["id"] == f"r{age}"
            probabilities = body["outputs"][1]
            assert probabilities["shape"] == [1 + age % 3, 2]
            assert probabilities["data"][1::2] == pytest.approx([age / 100] * (1 + age % 3))


class CrashingRuntime(FakeRuntime):
    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if len(self.feeds) > 0:  # the warm-up inference passes
            raise RuntimeError("onnxruntime blew up")
        return super().run(feed)


def test_an_unexpected_failure_is_a_500_in_the_protocol_shape(tmp_path: Path) -> None:
    for served in serve(make_settings(tmp_path), runtime=CrashingRuntime()):
        v2 = served.client.post(INFER, json=v2_body(), headers={"x-request-id": "r-1"})
        assert v2.status_code == 500
        assert v2.json() == {"error": "internal server error"}
        assert v2.headers["x-request-id"] == "r-1"
        v1 = served.client.post("/v1/models/churn:predict", json={"instances": [ROW]})
        assert v1.status_code == 500
        assert v1.json()["error"]["code"] == "internal"
        assert served.client.get(INFER).status_code == 405
