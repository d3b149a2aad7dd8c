"""``:explain`` through the app: SHAP attributions of the fake model's answers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluice.core.registry import (
    Bins,
    CategoricalProfile,
    NumericProfile,
    PredictionProfile,
    Profile,
)
from tests.unit.model_server.conftest import ROW, Served, make_settings, serve

EXPLAIN = "/v1/models/churn:explain"


def numeric(name: str, values: list[float]) -> NumericProfile:
    return NumericProfile(
        name=name, bins=Bins(edges=[min(values), max(values)], counts=[len(values)]),
        sample=sorted(values), mean=0.0, std=1.0, missing=0,
    )  # fmt: skip


def make_profile() -> Profile:
    return Profile(
        rows=100,
        features=[
            numeric("age", [20.0, 30.0, 40.0, 50.0, 60.0]),
            numeric("charges", [10.0, 50.0, 90.0]),
            numeric("senior", [0.0, 1.0]),
            CategoricalProfile(name="plan", frequencies={"basic": 80, "premium": 20}, missing=0),
            CategoricalProfile(name="region", frequencies={"north": 1, "south": 1}, missing=0),
        ],
        prediction=PredictionProfile(
            score_name="p(churned=1)", bins=Bins(edges=[0.0, 1.0], counts=[100]),
            sample=[0.5], label_frequencies={"0": 50, "1": 50},
        ),
    )  # fmt: skip


@pytest.fixture
def explaining(tmp_path: Path) -> Iterator[Served]:
    settings = make_settings(tmp_path, explain_max_rows=3, explain_background_rows=20)
    yield from serve(settings, profile=make_profile())


def test_attributions_add_up_to_the_prediction_minus_the_expected_value(
    explaining: Served,
) -> None:
    rows = [ROW, {**ROW, "age": 70}, {**ROW, "plan": "premium"}]
    response = explaining.client.post(EXPLAIN, json={"instances": rows})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_name"], body["model_version"], body["method"]) == (
        "churn", "v1", "kernel_shap",
    )  # fmt: skip
    first, older, premium = body["explanations"]
    for e in body["explanations"]:
        assert e["output"] == "p(churned=1)"
        assert sum(e["attributions"].values()) == pytest.approx(
            e["prediction"] - e["expected_value"], abs=1e-9
        )
    # the fake's p(1) is age / 100, or 0.9 on the premium plan: only those two matter
    assert first["prediction"] == pytest.approx(0.3)
    assert older["attributions"]["age"] > first["attributions"]["age"]
    assert first["attributions"]["charges"] == pytest.approx(0.0, abs=1e-12)
    assert premium["prediction"] == pytest.approx(0.9)
    assert premium["attributions"]["plan"] > 0.3
    second = explaining.client.post(EXPLAIN, json={"instances": rows}).json()
    assert second["explanations"] == body["explanations"]  # a fixed background


def test_explain_checks_rows_as_predict_does(explaining: Served) -> None:
    too_many = explaining.client.post(EXPLAIN, json={"instances": [ROW] * 4})
    assert too_many.status_code == 413
    assert "over the limit of 3 (explain_max_rows)" in too_many.json()["error"]["message"]
    bad = explaining.client.post(EXPLAIN, json={"instances": [{**ROW, "age": 30.5}]})
    assert bad.status_code == 422
    assert bad.json()["error"]["message"] == ("input 'age': takes whole numbers, row 0 is 30.5")
    shape = explaining.client.post(EXPLAIN, json={"rows": []})
    assert shape.status_code == 422
    other = explaining.client.post("/v1/models/other:explain", json={"instances": [ROW]})
    assert other.status_code == 404


def test_without_a_profile_explain_says_so(served: Served) -> None:
    response = served.client.post(EXPLAIN, json={"instances": [ROW]})
    assert response.status_code == 404
    assert "no profile.json" in response.json()["error"]["message"]


def test_explain_durations_are_exported(explaining: Served) -> None:
    explaining.client.post(EXPLAIN, json={"instances": [ROW]})
    count = explaining.registry.get_sample_value(
        "sluice_model_server_explain_duration_seconds_count", {"model": "churn", "version": "v1"}
    )
    assert count == 1


def test_without_shap_installed_explain_says_how_to_get_it(
    explaining: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "shap", None)  # as in the serving image by default
    response = explaining.client.post(EXPLAIN, json={"instances": [ROW]})
    assert response.status_code == 501
    assert "--build-arg EXTRAS=explain" in response.json()["error"]["message"]
