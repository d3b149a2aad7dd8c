"""A one-feature shift is caught within two windows, the right feature is named, and the
webhook is called once when the drift persists; unseen categories are their own bucket."""

from __future__ import annotations

import time

from sluice.trainer.data import generate_churn
from tests.integration.drift_monitor.conftest import StartMonitor, rows_committed, wait_for
from tests.integration.drift_monitor.receiver import webhook_receiver
from tests.integration.drift_monitor.traffic import Traffic

SIZE = 1000


def test_one_shifted_feature_is_named_within_two_windows_and_alerts_once(
    traffic: Traffic, start_monitor: StartMonitor
) -> None:
    with webhook_receiver() as hook:
        traffic.send(3 * SIZE, seed=200)
        with start_monitor(
            window_size=SIZE, alert_after_windows=2, alert_webhook_url=hook.url, history_windows=50
        ) as proc:
            wait_for(proc, lambda b: rows_committed(b) >= 3 * SIZE)
            traffic.send(5 * SIZE, seed=201, shift_feature="monthly_charges", shift_amount=0.5)
            body = wait_for(proc, lambda b: rows_committed(b) >= 8 * SIZE)
            deadline = time.monotonic() + 10
            while not hook.bodies and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.0)  # a second call would have come by now
    history = sorted(body["versions"]["v1"]["history"], key=lambda w: w["index"])
    assert [w["status"] for w in history[:3]] == ["ok"] * 3
    shifted = history[3:]
    assert shifted[0]["drifted_features"] == ["monthly_charges"] or (
        shifted[1]["drifted_features"] == ["monthly_charges"]
    )
    assert all(w["drifted_features"] == ["monthly_charges"] for w in shifted[1:])
    latest = body["versions"]["v1"]["latest"]["features"]["monthly_charges"]
    assert latest["methods"]["psi"]["statistic"] > 0.1
    assert latest["methods"]["ks"]["p_adjusted"] < 0.05
    assert len(hook.bodies) == 1, hook.bodies
    alert = hook.bodies[0]
    assert alert["kind"] == "drift_persisted"
    assert (alert["model"], alert["version"]) == ("churn", "v1")
    assert alert["drifted_features"] == ["monthly_charges"]
    assert alert["windows"] == 2
    assert len(alert["evidence"]) == 2
    assert "monthly_charges" in alert["evidence"][0]["features"]


def test_unseen_categories_are_counted_in_their_own_bucket_not_a_crash(
    traffic: Traffic, start_monitor: StartMonitor
) -> None:
    table = generate_churn(SIZE, seed=300)
    plan = table["plan"].to_numpy(dtype=object)
    plan[: SIZE // 2] = "platinum"  # never seen in training
    plan[SIZE // 2 : SIZE // 2 + 3] = "gold"
    table["plan"] = plan
    # the model server would refuse nothing here: the monitor sees what the router logged
    traffic.send(SIZE, seed=300, table=table)
    with start_monitor(window_size=SIZE) as proc:
        body = wait_for(proc, lambda b: rows_committed(b) >= SIZE)
    plan_report = body["versions"]["v1"]["latest"]["features"]["plan"]
    assert plan_report["unseen"] == SIZE // 2 + 3
    assert plan_report["unseen_values"] == {"platinum": SIZE // 2, "gold": 3}
    assert plan_report["drifted"] is True
    assert "plan" in body["versions"]["v1"]["latest"]["drifted_features"]
