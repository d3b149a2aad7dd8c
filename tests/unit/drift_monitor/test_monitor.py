"""The read loop through fakes of our interfaces: replay after a crash, alerts, leases."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CollectorRegistry

from sluice.core.registry import ModelRegistry
from sluice.drift_monitor.metrics import Metrics
from sluice.drift_monitor.monitor import Monitor
from sluice.drift_monitor.references import RegistryReferences
from sluice.drift_monitor.settings import Settings
from tests.unit.drift_monitor.conftest import entries
from tests.unit.drift_monitor.fakes import FakeAlerts, FakeFeedback, FakeLog, FakeState


def make(registry: ModelRegistry, log: FakeLog, state: FakeState, **options: Any) -> Monitor:
    settings = Settings(registry=registry.root, window_size=100, min_window_size=50,
                        batch_entries=7, consumer="c", **options)  # fmt: skip
    return Monitor(
        settings, log_=log, state=state, feedback=FakeFeedback(),
        references=RegistryReferences(registry), metrics=Metrics(CollectorRegistry()),
        alerts=FakeAlerts(), clock=lambda: 1_000.0,
    )  # fmt: skip


def test_a_crash_mid_window_loses_nothing_and_counts_nothing_twice(
    registry: ModelRegistry,
) -> None:
    log, state = FakeLog(), FakeState()
    for entry in entries(90, 3, seed=1):  # 270 rows: windows of >= 100 rows, 3 rows an entry
        log.add("churn", *entry)

    async def scenario() -> None:
        first = make(registry, log, state)
        await first.housekeeping()
        for _ in range(6):  # 42 entries, 126 rows: one window committed, one half full
            await first.step()
        assert state.rows_["churn"]["v1"] == 102
        assert len(log.pending["churn"]) == 8  # the open window's entries stay pending
        state.leases.clear()  # the first replica dies; its lease runs out
        second = make(registry, log, state)
        await second.housekeeping()  # claims the 8 pending entries and rebuilds the window
        for _ in range(10):
            await second.step()
        assert state.rows_["churn"]["v1"] == 204  # two full windows, 66 rows still open
        assert len(log.pending["churn"]) == 22

    asyncio.run(scenario())
    history = state.history_[("churn", "v1")]
    assert [w["index"] for w in history] == [1, 0]
    assert history[1]["last_id"] < history[0]["first_id"]


def test_a_persistent_shift_alerts_once_with_the_evidence(registry: ModelRegistry) -> None:
    log, state = FakeLog(), FakeState()
    for entry in entries(200, 5, seed=2, shift=1.0):  # 10 windows of 100 rows, x shifted
        log.add("churn", *entry)
    monitor = make(registry, log, state, alert_after_windows=3)

    async def scenario() -> None:
        await monitor.housekeeping()
        for _ in range(40):
            await monitor.step()

    asyncio.run(scenario())
    assert isinstance(monitor.alerts, FakeAlerts)
    sent = monitor.alerts.sent
    assert len(sent) == 1
    assert sent[0]["drifted_features"] == ["x"] and sent[0]["windows"] == 3
    assert len(sent[0]["evidence"]) == 3
    assert state.streaks_["churn"]["v1"]["alert"] == "sent"
    assert state.streaks_["churn"]["v1"]["count"] == 10


def test_a_replica_that_lost_its_lease_commits_nothing(registry: ModelRegistry) -> None:
    log, state = FakeLog(), FakeState()
    for entry in entries(60, 5, seed=3):
        log.add("churn", *entry)
    monitor = make(registry, log, state)

    async def scenario() -> None:
        await monitor.housekeeping()
        state.leases["churn"] = "someone else"
        for _ in range(10):
            await monitor.step()

    asyncio.run(scenario())
    assert "churn" not in state.rows_
    assert "churn" not in monitor.owned
