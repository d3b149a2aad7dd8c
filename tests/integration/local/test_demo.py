"""``sluice demo`` as a user runs it, in a temporary home with no stack running: it starts
one, tells the story, and the record says what happened."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.local.test_stack import ROWS, assert_all_gone, record, run

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    run(tmp_path, "down", timeout=120)


def test_demo_promotes_v2_stops_v3_in_shadow_and_canary_and_names_the_drift(home: Path) -> None:
    done = run(home, "demo", "--rows", ROWS, timeout=1100)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no stack runs: starting one" in done.stdout

    doc = json.loads((home / "stack" / "demo.json").read_text())
    out = doc["outcome"]
    assert out["rollouts"] == {
        "churn-v2": "Promoted",
        "churn-v3-shadow": "Aborted",
        "churn-v3": "Aborted",
    }
    assert out["shadow_agreement"] < 0.5  # v3's labels are flipped
    assert out["failed_requests"] == 0  # v3 answered wrongly, never failed a user
    assert set(out["requests"]) == {"v1", "v2", "v3"}
    assert all(set(statuses) == {"200"} for statuses in out["requests"].values())
    assert out["drift"]["named"] is True
    assert out["drift"]["drifted_features"] == ["monthly_charges"]
    assert out["accuracy"]["v3"]["accuracy"] < 0.5 < out["accuracy"]["v2"]["accuracy"]
    routes = doc["routes"][-1]
    assert routes["stable"] == "v2" and routes["weights"]["v3"] == 0

    assert "rollout churn-v2: Promoted" in done.stdout
    assert "drift: monthly_charges moved by" in done.stdout
    report = (home / "stack" / "demo.html").read_text()
    assert report.count('<div class="chart"') == 6  # with shadow agreement

    services = record(home)
    assert "model-server-v3" in services  # started by the demo, stopped by `sluice down`
    pids = {int(str(s["pid"])) for s in services.values()}
    assert run(home, "down").returncode == 0
    assert_all_gone(pids)
