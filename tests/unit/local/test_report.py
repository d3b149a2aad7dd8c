"""The demo's report rendered from a small hand-made record: no stack, no browser."""

from __future__ import annotations

import doctest
from typing import Any

import pytest

from sluice.local import record as record_module
from sluice.local import report as report_module
from sluice.local.record import outcome, summary
from sluice.local.report import charts, render_report


def small_record() -> dict[str, Any]:
    """What the demo records, cut to a few samples: a canary promoted, a drift named."""
    metrics = [
        {"name": "success", "value": 1.0, "condition": ">= 0.99", "verdict": "pass", "samples": 80},
        {"name": "p99", "value": 0.02, "condition": "<= 0.5", "verdict": "pass", "samples": 80},
    ]
    return {
        "model": "churn", "started": 1.0, "router": "http://127.0.0.1:1",
        "traffic": [
            {"t": 0, "version": "v1", "status": "200", "count": 50},
            {"t": 1, "version": "v1", "status": "200", "count": 40},
            {"t": 1, "version": "v2", "status": "200", "count": 10},
            {"t": 2, "version": "v2", "status": "503", "count": 1},
            {"t": 2, "version": "none", "status": "failed", "count": 1},
        ],
        "rollouts": [
            {"t": 0.5, "name": "churn", "phase": "Progressing", "stage": "canary", "step": 1,
             "weight": 20, "mirror": 0, "metrics": []},
            {"t": 1.5, "name": "churn", "phase": "Progressing", "stage": "canary", "step": 3,
             "weight": 50, "mirror": 0, "metrics": metrics},
            {"t": 2.5, "name": "churn", "phase": "Promoted", "stage": "canary", "step": 5,
             "weight": 100, "mirror": 0, "metrics": metrics},
        ],
        "routes": [
            {"t": 0.5, "stable": "v1", "weights": {"v1": 80.0, "v2": 20.0}},
            {"t": 2.5, "stable": "v2", "weights": {"v1": 0.0, "v2": 100.0}},
        ],
        "drift": [
            {"t": 1.0, "version": "v1", "index": 1, "status": "ok", "rows": 500, "start": 0,
             "drifted_features": [], "effects": {"monthly_charges": 0.03, "age": 0.02}},
            {"t": 3.0, "version": "v2", "index": 2, "status": "drift", "rows": 500, "start": 2,
             "drifted_features": ["monthly_charges"],
             "effects": {"monthly_charges": 0.4, "age": 0.02}},
        ],
        "accuracy": [
            {"t": 1.0, "version": "v1", "accuracy": 0.8, "labelled": 90},
            {"t": 2.0, "version": "v2", "accuracy": 0.9, "labelled": 10},
        ],
        "shadow": [{"t": 1.0, "agreement": 0.97, "condition": ">= 0.9"}],
        "events": [{"t": 0.0, "what": "steady traffic <v1>"}],
        "shift": {"t": 2.0, "feature": "monthly_charges", "by": 27.3},
        "outcome": {},
    }  # fmt: skip


def test_outcome_counts_failed_requests_and_names_the_drift() -> None:
    result = outcome(small_record())
    assert result["failed_requests"] == 2  # the 503 and the one with no answer
    assert result["requests"]["v1"] == {"200": 90}
    assert result["rollouts"] == {"churn": "Promoted"}
    assert result["drift"]["named"] is True
    assert result["drift"]["drifted_features"] == ["monthly_charges"]
    assert result["accuracy"]["v2"] == {"accuracy": 0.9, "labelled": 10}
    assert result["shadow_agreement"] == 0.97
    assert "shadow agreement (labels): 0.970" in summary({**small_record(), "outcome": result})


def test_report_has_every_chart_with_the_recorded_figures() -> None:
    record = small_record()
    record["outcome"] = outcome(record)
    titles = [fig.layout.title.text for fig in charts(record)]
    assert titles == [
        "Traffic and errors per version", "Rollouts: weights and phases",
        "Analysis values against their conditions", "Shadow agreement",
        "Drift per feature (test effect; X = drifted)",
        "Live accuracy from ground-truth feedback",
    ]  # fmt: skip
    analysis = charts(record)[2]
    names = [t.name for t in analysis.data]
    assert "success >= 0.99" in names and "p99 <= 0.5" in names
    assert list(analysis.data[names.index("p99 <= 0.5")].y) == [0.5, 0.5]

    shadow = charts(record)[3]
    assert [t.name for t in shadow.data] == ["agreement", "agreement >= 0.9"]
    drift = charts(record)[4]
    assert [t.name for t in drift.data] == [
        "monthly_charges (v1)", "largest other (v1)",
        "monthly_charges (v2)", "largest other (v2)",
    ]  # fmt: skip
    assert list(drift.data[2].y) == [0.4]
    rollouts = charts(record)[1]
    assert "route: v2" in [t.name for t in rollouts.data]

    page = render_report(record, summary(record))
    assert page.startswith("<!DOCTYPE html>")
    assert page.count('<div class="chart"') == 6
    assert "rollout churn: Promoted" in page
    assert "steady traffic &lt;v1&gt;" in page  # escaped
    assert "<script src=" not in page  # self-contained: plotly inline
    assert "Plotly.newPlot" in page


def test_report_without_shadow_or_drift_still_renders() -> None:
    record = small_record()
    del record["shadow"], record["shift"]
    record["drift"] = []
    record["outcome"] = outcome(record)
    page = render_report(record, summary(record))
    assert page.count('<div class="chart"') == 5


@pytest.mark.parametrize("module", [record_module, report_module])
def test_docstring_examples(module: Any) -> None:
    result = doctest.testmod(module)
    assert result.failed == 0
    assert result.attempted > 0
