"""An off-the-shelf V2 client, unchanged: NVIDIA's tritonclient over HTTP."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.integration.model_server.conftest import MODEL, VERSION, Trained
from tests.support.procs import Process

pytestmark = pytest.mark.integration


def client_inputs(
    client: triton.InferenceServerClient, trained: Trained, binary: bool
) -> list[triton.InferInput]:
    """Inputs built the way a tritonclient user does: from the model's metadata."""
    rows = trained.rows.head(5)
    inputs = []
    for spec in client.get_model_metadata(MODEL)["inputs"]:
        column = rows[spec["name"]].to_numpy()
        dtype = object if spec["datatype"] == "BYTES" else np.float64
        arr = column.astype(dtype).reshape(-1, 1)
        tensor = triton.InferInput(spec["name"], list(arr.shape), spec["datatype"])
        tensor.set_data_from_numpy(arr, binary_data=binary)
        inputs.append(tensor)
    return inputs


@pytest.fixture
def client(server: Process) -> triton.InferenceServerClient:
    assert server.url
    return triton.InferenceServerClient(server.url.removeprefix("http://"))


def test_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, VERSION)
    assert not client.is_model_ready("other")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_matches_scikit_learn(
    client: triton.InferenceServerClient, trained: Trained, binary: bool
) -> None:
    result = client.infer(MODEL, client_inputs(client, trained, binary), model_version=VERSION)
    expected = trained.predict_proba(trained.rows.head(5))
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, atol=1e-5)
    classes = trained.card.classes
    assert [str(v) for v in result.as_numpy("label")] == [classes[i] for i in expected.argmax(1)]


def test_requested_outputs_and_request_id(
    client: triton.InferenceServerClient, trained: Trained
) -> None:
    result = client.infer(
        MODEL,
        client_inputs(client, trained, True),
        outputs=[triton.InferRequestedOutput("probabilities", binary_data=False)],
        request_id="req-7",
    )
    assert result.get_response()["id"] == "req-7"
    assert result.as_numpy("label") is None
    assert result.as_numpy("probabilities").shape == (5, len(trained.card.classes))


def test_errors_reach_the_client(client: triton.InferenceServerClient, trained: Trained) -> None:
    with pytest.raises(InferenceServerException, match="missing input"):
        client.infer(MODEL, client_inputs(client, trained, True)[:3])
