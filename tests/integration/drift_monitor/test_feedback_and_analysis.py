"""Ground truth joins logged predictions by row id; candidate vs stable on the same traffic."""

from __future__ import annotations

import httpx
import numpy as np
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from sluice.core.registry import ModelRegistry
from sluice.trainer.data import generate_churn
from tests.integration.drift_monitor.conftest import (
    FEEDBACK,
    MODEL,
    StartMonitor,
    rows_committed,
    wait_for,
)
from tests.integration.drift_monitor.traffic import Traffic


def test_feedback_joins_by_row_id_and_reports_rolling_performance(
    traffic: Traffic, start_monitor: StartMonitor
) -> None:
    table = generate_churn(1500, seed=500)
    batched = traffic.send(1000, seed=500, per_entry=8, table=table.iloc[:1000])
    single = traffic.send(
        500, seed=501, per_entry=1, prefix="s", table=table.iloc[1000:].reset_index(drop=True)
    )
    labels, scores = traffic.predict(table)
    with start_monitor(window_size=500, window_seconds=2) as proc:
        wait_for(proc, lambda b: rows_committed(b) >= 1500)
        ids = batched.row_ids + single.row_ids
        truth = batched.truth + single.truth
        first = httpx.post(
            f"{proc.url}/v1/feedback",
            json={
                "model": MODEL,
                "ids": [*ids, "nobody", "r500-0/99"],
                "labels": [*truth, 1, 0],
            },
            headers=FEEDBACK,
        ).json()
        again = httpx.post(
            f"{proc.url}/v1/feedback",
            json={"model": MODEL, "ids": ids[:10], "labels": truth[:10]},
            headers=FEEDBACK,
        ).json()
        body = wait_for(proc, lambda b: b["versions"]["v1"]["performance"]["labelled"] == 1500)
    assert (first["received"], first["joined"], first["unknown"]) == (1502, 1500, 2)
    assert first["unknown_ids"] == ["nobody", "r500-0/99"]
    assert (again["joined"], again["duplicate"]) == (0, 10)
    assert body["feedback"] == {"received": 1512, "joined": 1500, "unknown": 2, "duplicate": 10}
    perf = body["versions"]["v1"]["performance"]
    y = np.array(truth)
    assert perf["accuracy"] == accuracy_score(y, np.array(labels, dtype=int))
    assert abs(perf["f1"] - f1_score(y, np.array(labels, dtype=int))) < 1e-12
    assert abs(perf["roc_auc"] - roc_auc_score(y, scores)) < 1e-12


def test_analysis_passes_a_like_candidate_fails_a_different_one_and_says_inconclusive(
    traffic: Traffic, registry: ModelRegistry, redis_url: str, start_monitor: StartMonitor
) -> None:
    candidate = Traffic(registry, MODEL, "v2", redis_url)
    for i in range(4):
        traffic.send(600, seed=600 + i, prefix="s")
        candidate.send(600, seed=700 + i, prefix="c")
        # a broken build: the same inputs, squashed scores and labels
        traffic.send(600, seed=800 + i, prefix="b", version="v9", score_map=np.sqrt)
    candidate.close()
    traffic.send(100, seed=900, prefix="t", version="v7")
    with start_monitor(window_size=2000, window_seconds=3) as proc:
        wait_for(proc, lambda b: "v1|v2" in b["comparisons"] and "v1|v9" in b["comparisons"])

        def analysis(candidate: str) -> dict:
            response = httpx.get(
                f"{proc.url}/v1/analysis/{MODEL}", params={"candidate": candidate, "stable": "v1"}
            )
            response.raise_for_status()
            body: dict = response.json()
            return body

        good, bad, few = analysis("v2"), analysis("v9"), analysis("v7")
        wait_for(proc, lambda b: "v1|v7" in b["comparisons"])
        few = analysis("v7")
    assert good["status"] == "pass", {k: v for k, v in good.items() if "rows" in k or k == "reason"}
    assert good["conclusive"] is True
    assert good["candidate_rows"] >= 2000 and good["stable_rows"] >= 2000
    assert good["outputs_differ"] == "" and good["inputs_differ"] == ""
    assert bad["status"] == "fail", bad
    assert "score" in bad["outputs_differ"]
    assert bad["score_ks"] > 0.1 and bad["score_ks_p_adjusted"] < 0.05
    assert few["status"] == "inconclusive", few
    assert few["conclusive"] is False and "too few rows" in few["reason"]
    assert all(not isinstance(v, (dict, list)) for v in good.values())  # flat for successCondition
