"""The HTTP API through the app, with fakes of our own interfaces."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from sluice.core.registry import ModelRegistry
from sluice.drift_monitor.app import create_app
from sluice.drift_monitor.evaluate import evaluate_pair
from sluice.drift_monitor.settings import Settings
from sluice.drift_monitor.verdict import Policy
from sluice.drift_monitor.windows import ClosedWindow, SideData
from tests.support.asgi import AppClient
from tests.unit.drift_monitor.conftest import register
from tests.unit.drift_monitor.fakes import FakeFeedback, FakeLog, FakeState

TOKEN = "feedback-secret"
FEEDBACK = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def state() -> FakeState:
    return FakeState()


@pytest.fixture
def client(registry: ModelRegistry, state: FakeState) -> Iterator[AppClient]:
    settings = Settings(registry=registry.root, max_feedback_items=5, feedback_token=TOKEN)  # type: ignore[arg-type]
    app = create_app(
        settings, state=state, feedback=FakeFeedback(), prediction_log=FakeLog(),
        registry=CollectorRegistry(), run_monitor=False,
    )  # fmt: skip
    with AppClient(app, FEEDBACK) as c:
        yield c


def pair_report(rows: int, shift: float) -> dict:
    now = time.time()
    rng = np.random.default_rng(5)

    def side(version: str, move: float) -> SideData:
        scores = np.clip(rng.normal(0.4 + move, 0.1, rows), 0, 1)
        return SideData(version, rows, {"x": rng.normal(0, 1, rows)}, scores,
                        np.where(scores > 0.5, "1", "0").astype(object))  # fmt: skip

    window = ClosedWindow("v1|v2", ("v1", "v2"), 0, "1-0", "9-0", now - 5, now - 1,
                          (side("v1", 0.0), side("v2", shift)))  # fmt: skip
    return evaluate_pair("churn", window, {"x": "numeric"}, Policy(), now - 1)


def put_pair(state: FakeState, report: dict) -> None:
    state.latest_.setdefault("churn", {})["v1|v2"] = report
    state.history_.setdefault(("churn", "v1|v2"), []).insert(0, report)


def test_an_unknown_model_is_404(client: AppClient) -> None:
    response = client.get("/v1/drift/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_watched"


def test_analysis_is_inconclusive_without_a_comparison_window(client: AppClient) -> None:
    body = client.get("/v1/analysis/churn", params={"candidate": "v2", "stable": "v1"}).json()
    assert body["status"] == "inconclusive" and body["conclusive"] is False
    assert "no comparison window" in body["reason"]


@pytest.mark.parametrize(
    ("rows", "shift", "status"),
    [(3000, 0.0, "pass"), (3000, 0.2, "fail"), (100, 0.2, "inconclusive")],
)
def test_analysis_is_flat_and_says_pass_fail_or_inconclusive(
    client: AppClient,
    state: FakeState,
    rows: int,
    shift: float,
    status: str,
) -> None:
    put_pair(state, pair_report(rows, shift))
    body = client.get("/v1/analysis/churn", params={"candidate": "v2", "stable": "v1"}).json()
    assert body["status"] == status, body["reason"]
    assert all(not isinstance(v, dict | list) for v in body.values())
    assert body["candidate_rows"] == rows and body["min_rows"] == 500
    assert "score_ks" in body and "score_ks_p_adjusted" in body


def test_feedback_reports_unknown_ids_without_failing_the_batch(client: AppClient) -> None:
    response = client.post(
        "/v1/feedback", json={"model": "churn", "ids": ["r1", "gone"], "labels": [1, "0"]}
    )
    assert response.status_code == 200
    assert response.json()["unknown_ids"] == ["gone"]
    report = client.get("/v1/drift/churn").json()
    assert report["feedback"]["unknown"] == 1


def test_a_regressors_live_performance_is_its_error_on_joined_values(tmp_path: Path) -> None:
    registry = register(tmp_path / "registry", "spend", regression=True)
    settings = Settings(registry=registry.root, feedback_token=TOKEN)  # type: ignore[arg-type]
    app = create_app(
        settings, state=FakeState(), feedback=FakeFeedback(), prediction_log=FakeLog(),
        registry=CollectorRegistry(), run_monitor=False,
    )  # fmt: skip
    with AppClient(app, FEEDBACK) as client:
        body = {"model": "spend", "ids": ["r1", "r2", "r3"], "labels": [1.0, 0.5, "n/a"]}
        assert client.post("/v1/feedback", json=body).status_code == 200
        figures = client.get("/v1/analysis/spend?candidate=v1&stable=v1").json()
    # the fake logged 0.9 for every row: errors -0.1 and 0.4
    assert figures["candidate_mae"] == pytest.approx(0.25)
    assert figures["candidate_rmse"] == pytest.approx(np.sqrt((0.01 + 0.16) / 2))
    assert figures["candidate_mean_error"] == pytest.approx(0.15)
    assert figures["candidate_not_numeric"] == 1
    assert "candidate_accuracy" not in figures


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"model": "churn", "ids": ["a"], "labels": []}, 422),
        ({"model": "churn", "ids": list("abcdef"), "labels": [1] * 6}, 413),
        ({"model": "nope", "ids": ["a"], "labels": [1]}, 404),
        ({"ids": ["a"], "labels": [1]}, 422),
    ],
)
def test_bad_feedback_is_refused_with_a_reason(client: AppClient, body: dict, status: int) -> None:
    response = client.post("/v1/feedback", json=body)
    assert response.status_code == status
    assert response.json()["error"]["message"]


@pytest.mark.parametrize("content", [b'{"model": "churn", "ids": [', b"\xff\xfe"])
def test_feedback_that_is_not_json_is_400_malformed_json(client: AppClient, content: bytes) -> None:
    """The same answer as the model server and the router give, not FastAPI's 422."""
    response = client.post(
        "/v1/feedback", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "malformed_json"
    assert "not valid JSON" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b'{"model": "\xff"}', 400, "not valid UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "not valid JSON"),  # nested too deep
    ],
)
def test_an_unparseable_body_is_4xx_saying_why(
    client: AppClient, body: bytes, status: int, reason: str
) -> None:
    headers = {"content-type": "application/json"}
    response = client.post("/v1/feedback", content=body, headers=headers)
    assert response.status_code == status
    assert reason in response.json()["error"]["message"]


def test_metrics_and_health(client: AppClient) -> None:
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert "sluice_drift_monitor_records_total" in client.get("/metrics").text


def test_readyz_is_not_ready_while_monitor_writes_fail(registry: ModelRegistry) -> None:
    settings = Settings(registry=registry.root, feedback_token=TOKEN)  # type: ignore[arg-type]
    app = create_app(
        settings, state=FakeState(), feedback=FakeFeedback(), prediction_log=FakeLog(),
        registry=CollectorRegistry(), run_monitor=False,
    )  # fmt: skip
    with AppClient(app, FEEDBACK) as c:
        assert c.get("/readyz").status_code == 200
        app.state.monitor.failing = "window write of churn failing: TimeoutError()"
        response = c.get("/readyz")
        assert response.status_code == 503
        assert "window write of churn failing" in response.json()["reason"]
        app.state.monitor.failing = None
        assert c.get("/readyz").status_code == 200
