"""The real `sluice serve model-server` process, over HTTP, with a model the trainer made."""

from __future__ import annotations

import re
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from tests.integration.model_server.conftest import MODEL, VERSION, Trained, v2_inputs
from tests.support.procs import Process

pytestmark = pytest.mark.integration


def post(server: Process, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", timeout=10, **kwargs)


def get(server: Process, path: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", timeout=10)


def test_health_and_metadata(server: Process, trained: Trained) -> None:
    ready = (f"/v2/models/{MODEL}/ready", f"/v2/models/{MODEL}/versions/{VERSION}/ready")
    for path in ("/livez", "/readyz", "/v2/health/live", "/v2/health/ready", *ready):
        assert get(server, path).status_code == 200, path
    assert "binary_tensor_data" in get(server, "/v2").json()["extensions"]
    meta = get(server, f"/v2/models/{MODEL}/versions/{VERSION}").json()
    assert meta == get(server, f"/v2/models/{MODEL}").json()
    assert meta["name"] == MODEL and meta["versions"] == [VERSION]
    assert meta["platform"] == "onnxruntime"
    assert [i["name"] for i in meta["inputs"]] == [f.name for f in trained.card.features]
    session = ort.InferenceSession(trained.registry.onnx_path(MODEL, VERSION))
    onnx_types = {i.name: i.type for i in session.get_inputs()}
    wanted = {"tensor(double)": "FP64", "tensor(float)": "FP32", "tensor(string)": "BYTES"}
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {
        name: wanted[t] for name, t in onnx_types.items()
    }
    assert [o["name"] for o in meta["outputs"]] == ["label", "probabilities"]
    assert meta["outputs"][1]["shape"] == [-1, len(trained.card.classes)]
    assert get(server, "/v2/models/other").status_code == 404
    assert get(server, f"/v2/models/{MODEL}/versions/v9").status_code == 404
    assert get(server, f"/v1/models/{MODEL}").json() == {"name": MODEL, "ready": True}


def test_v2_predictions_equal_scikit_learn(server: Process, trained: Trained) -> None:
    rows = trained.rows
    response = post(server, f"/v2/models/{MODEL}/versions/{VERSION}/infer",
                    json={"id": "batch-1", "inputs": v2_inputs(rows)})  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "batch-1" and body["model_version"] == VERSION
    outputs = {o["name"]: o for o in body["outputs"]}
    probabilities = np.array(outputs["probabilities"]["data"]).reshape(
        outputs["probabilities"]["shape"]
    )
    expected = trained.predict_proba(rows)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5, rtol=0)
    classes = trained.card.classes
    assert [str(v) for v in outputs["label"]["data"]] == [
        classes[i] for i in expected.argmax(axis=1)
    ]


def test_v1_predictions_equal_scikit_learn(server: Process, trained: Trained) -> None:
    rows = trained.rows.head(8)
    response = post(server, f"/v1/models/{MODEL}:predict",
                    json={"instances": rows.to_dict(orient="records")})  # fmt: skip
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    expected = trained.predict_proba(rows)
    classes = trained.card.classes
    for prediction, p in zip(predictions, expected, strict=True):
        assert list(prediction["probabilities"]) == classes
        np.testing.assert_allclose(list(prediction["probabilities"].values()), p, atol=1e-5)
        assert prediction["label"] == classes[int(p.argmax())]


def test_one_row_in_a_different_datatype_and_shape_agrees(
    server: Process, trained: Trained
) -> None:
    """A client sending [N] tensors and FP32/INT32 gets the same answer as FP64/INT64."""
    row = trained.rows.head(1)
    inputs = v2_inputs(row)
    for tensor in inputs:
        tensor["shape"] = [1]
        tensor["datatype"] = {"FP64": "FP64", "INT64": "INT32"}.get(tensor["datatype"], "BYTES")
    response = post(server, f"/v2/models/{MODEL}/infer", json={"inputs": inputs})
    assert response.status_code == 200, response.text
    got = response.json()["outputs"][1]["data"]
    np.testing.assert_allclose(got, trained.predict_proba(row)[0], atol=1e-5)


def body_with(trained: Trained, change: Any) -> dict[str, Any]:
    inputs = v2_inputs(trained.rows.head(2))
    change(inputs)
    return {"inputs": inputs}


def set_field(name: str, key: str, value: Any) -> Any:
    def change(inputs: list[dict[str, Any]]) -> None:
        next(t for t in inputs if t["name"] == name)[key] = value

    return change


BAD = [
    (lambda i: i.pop(0), 422, "missing input 'age'"),
    (lambda i: i.append({**i[0], "name": "colour"}), 422, "unknown input 'colour'"),
    (set_field("plan", "data", [1, 2]), 422, "input 'plan'"),
    (set_field("age", "datatype", "BYTES"), 422, "input 'age'"),
    (set_field("tenure_months", "data", [1.5, 2.0]), 422, "input 'tenure_months'"),
    (set_field("monthly_charges", "data", [None, 1.0]), 422, "input 'monthly_charges'"),
    (set_field("age", "shape", [2, 2]), 422, "input 'age'"),
    (set_field("age", "data", [30]), 422, "input 'age'"),
    (lambda i: i[1].update(shape=[3, 1], data=i[1]["data"] + [1]), 422, "rows"),
]


@pytest.mark.parametrize(("change", "status", "message"), BAD)
def test_bad_input_is_a_4xx_naming_the_field(
    server: Process, trained: Trained, change: Any, status: int, message: str
) -> None:
    response = post(server, f"/v2/models/{MODEL}/infer", json=body_with(trained, change))
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_limits_and_malformed_bodies(server: Process, trained: Trained) -> None:
    infer = f"/v2/models/{MODEL}/infer"
    assert post(server, infer, content=b"{oops").status_code == 400
    big = {"inputs": v2_inputs(trained.rows.sample(300, replace=True, random_state=1))}
    too_many = post(server, infer, json=big)
    assert too_many.status_code == 413 and "over the limit of 256" in too_many.json()["error"]
    huge = post(server, infer, content=b"[" + b"1," * 150_000 + b"1]")
    assert huge.status_code == 413
    v1 = post(server, f"/v1/models/{MODEL}:predict", json={"instances": [{"age": 3}]})
    assert v1.status_code == 422 and v1.json()["error"]["code"] == "invalid_input"
    assert post(server, "/v2/models/other/infer", json=big).status_code == 404


def test_metrics_describe_the_traffic(server: Process, trained: Trained) -> None:
    rows = trained.rows.head(4)
    for _ in range(3):
        post(server, f"/v2/models/{MODEL}/infer", json={"inputs": v2_inputs(rows)})
    text = get(server, "/metrics").text

    def value(series: str) -> float:
        match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
        assert match, series
        return float(match.group(1))

    labels = f'model="{MODEL}",version="{VERSION}"'
    assert value(f"sluice_model_server_model_info{{{labels}}}") == 1
    assert value(f'sluice_model_server_batch_size_rows_bucket{{le="4.0",{labels}}}') >= 3
    assert value(f"sluice_model_server_prediction_score_ratio_count{{{labels}}}") >= 12
    assert value(f"sluice_model_server_inference_duration_seconds_count{{{labels}}}") >= 3
    ok = 'sluice_model_server_http_requests_total{code="200",endpoint="/v2/models/{model}/infer"}'
    assert value(ok) >= 3
    assert "sluice_model_server_http_request_duration_seconds_bucket" in text
