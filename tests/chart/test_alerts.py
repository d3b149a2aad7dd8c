"""The alerts (charts/sluice/files/alerts.yaml) checked and unit-tested by promtool.

Every alert has a test in alerts_test.yaml that fires it and an evaluation where it stays
quiet; the PrometheusRule carries the same file (test_render.py).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.chart.conftest import CHART, run

RULES = CHART / "files" / "alerts.yaml"
TESTS = Path(__file__).resolve().parent / "alerts_test.yaml"
EXPECTED = {
    "SluiceRolloutAborted",  # rollout aborted
    "SluiceRolloutInconclusive",  # stuck inconclusive
    "SluiceRolloutPausedTooLong",  # paused too long
    "SluiceCandidateFailingAnalysis",
    "SluiceDriftPersisting",
    "SluiceDriftMonitorBehind",  # reading the prediction log late
    "SluiceFeaturesStale",  # staler than their ttl
    "SluiceVersionErrorRateHigh",  # error rate per version
    "SluiceVersionLatencyHigh",  # latency per version
    "SluiceComponentDown",
    "SluiceRedisUnreachable",
    "SluiceRoutingTableLost",  # Redis came back empty
}


def alerts() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}


def test_promtool_check_rules(promtool: str) -> None:
    out = run([promtool, "check", "rules", str(RULES)])
    assert f"SUCCESS: {len(alerts())} rules found" in out


def test_promtool_test_rules(promtool: str) -> None:
    run([promtool, "test", "rules", str(TESTS)])


def test_every_alert_fires_in_one_test_and_stays_quiet_in_another() -> None:
    assert alerts() == EXPECTED
    fired: set[str] = set()
    quiet: set[str] = set()
    for test in yaml.safe_load(TESTS.read_text())["tests"]:
        for check in test["alert_rule_test"]:
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    assert fired == EXPECTED
    assert quiet == EXPECTED
