"""Same-distribution traffic over many windows: drift is (almost) never claimed."""

from __future__ import annotations

from collections import Counter

from tests.integration.drift_monitor.conftest import StartMonitor, rows_committed, wait_for
from tests.integration.drift_monitor.traffic import Traffic

WINDOWS = 40
WINDOW_SIZE = 2000  # the default


def test_false_alarm_rate_is_under_five_percent_per_feature_at_default_settings(
    traffic: Traffic, start_monitor: StartMonitor
) -> None:
    traffic.send(WINDOWS * WINDOW_SIZE, seed=100)
    with start_monitor(history_windows=WINDOWS) as proc:
        body = wait_for(proc, lambda b: rows_committed(b) >= WINDOWS * WINDOW_SIZE)
    v1 = body["versions"]["v1"]
    assert len(v1["history"]) == WINDOWS
    assert {w["rows"] for w in v1["history"]} == {WINDOW_SIZE}
    flagged = Counter(f for w in v1["history"] for f in w["drifted_features"])
    flagged.update("prediction" for w in v1["history"] if w["prediction_drifted"])
    worst = max(flagged.values(), default=0)
    assert worst / WINDOWS < 0.05, flagged
    assert all(w["status"] == "ok" for w in v1["history"]) or worst / WINDOWS < 0.05
    # every figure is there, not just a flag
    latest = v1["latest"]
    for name, feature in latest["features"].items():
        for method, figures in feature["methods"].items():
            assert {"statistic", "p_value", "p_adjusted", "threshold", "drifted"} <= set(figures), (
                name,
                method,
            )
