"""A regressor served over V2 and V1: one ``value`` per row instead of label and probabilities."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sluice.core.registry import ModelCard
from tests.unit.model_server.conftest import (
    ROW,
    FakeRuntime,
    Served,
    make_card,
    make_settings,
    serve,
    v2_body,
)


class FakeRegressor(FakeRuntime):
    """value = 10 * age + 1000 for the premium plan."""

    @property
    def output_types(self) -> Mapping[str, np.dtype[Any]]:
        return {"value": np.dtype(np.float64)}

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.feeds.append(dict(feed))
        premium = np.where(feed["plan"] == "premium", 1000.0, 0.0)
        return {"value": 10.0 * feed["age"] + premium}


def regression_card() -> ModelCard:
    return make_card().model_copy(update={"task": "regression", "classes": [], "label": "spend"})


@pytest.fixture
def regressor(tmp_path: Path) -> Iterator[Served]:
    yield from serve(make_settings(tmp_path), runtime=FakeRegressor(), card=regression_card())


def test_v2_infer_answers_one_value_per_row(regressor: Served) -> None:
    rows = [ROW, {**ROW, "plan": "premium"}]
    response = regressor.client.post("/v2/models/churn/infer", json=v2_body(rows))
    assert response.status_code == 200, response.text
    (value,) = response.json()["outputs"]
    assert value == {"name": "value", "datatype": "FP64", "shape": [2, 1], "data": [300.0, 1300.0]}


def test_v2_metadata_says_it_is_a_regression(regressor: Served) -> None:
    meta = regressor.client.get("/v2/models/churn").json()
    assert meta["outputs"] == [{"name": "value", "datatype": "FP64", "shape": [-1, 1]}]
    assert meta["parameters"]["task"] == "regression"
    assert meta["parameters"]["classes"] == []


def test_asking_a_regressor_for_probabilities_names_what_it_has(regressor: Served) -> None:
    body = v2_body(outputs=[{"name": "probabilities"}])
    response = regressor.client.post("/v2/models/churn/infer", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "unknown output 'probabilities'; the model has 'value'"


def test_v1_predict_answers_values(regressor: Served) -> None:
    body = {"instances": [ROW, {**ROW, "age": 41}]}
    response = regressor.client.post("/v1/models/churn:predict", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == [{"value": 300.0}, {"value": 410.0}]


def test_a_graph_that_does_not_answer_as_its_card_says_never_gets_ready(tmp_path: Path) -> None:
    loaded = threading.Event()
    loaded.set()
    settings = make_settings(tmp_path)
    for served in serve(settings, gate=loaded, runtime=FakeRuntime(), card=regression_card()):
        for _ in range(10_000):  # the model loads in a background task
            ready = served.client.get("/readyz")
            if "failed" in ready.text:
                break
        assert ready.status_code == 503
        assert "card.json says it is a regression model" in ready.json()["reason"]
