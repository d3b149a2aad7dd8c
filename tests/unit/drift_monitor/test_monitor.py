"""The read loop through fakes of our interfaces: replay after a crash, alerts, leases."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from sluice.core.registry import ModelRegistry
from sluice.drift_monitor.metrics import Metrics
from sluice.drift_monitor.monitor import Monitor
from sluice.drift_monitor.references import RegistryReferences
from sluice.drift_monitor.settings import Settings
from tests.unit.drift_monitor.conftest import entries
from tests.unit.drift_monitor.fakes import (
    FakeAlerts,
    FakeFeedback,
    FakeLog,
    FakeState,
    FlakyFeedback,
    FlakyState,
)


def make(
    registry: ModelRegistry, log: FakeLog, state: FakeState, *,
    feedback: FakeFeedback | None = None, clock: list[float] | None = None, **options: Any,
) -> Monitor:  # fmt: skip
    settings = Settings(registry=registry.root, window_size=100, min_window_size=50,
                        batch_entries=7, consumer="c", **options)  # fmt: skip
    now = clock or [1_000.0]
    return Monitor(
        settings, log_=log, state=state, feedback=feedback or FakeFeedback(),
        references=RegistryReferences(registry), metrics=Metrics(CollectorRegistry()),
        alerts=FakeAlerts(), clock=lambda: now[0],
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
        assert len(log.pending[("churn", 0)]) == 8  # the open window's entries stay pending
        state.leases.clear()  # the first replica dies; its lease runs out
        second = make(registry, log, state)
        await second.housekeeping()  # claims the 8 pending entries and rebuilds the window
        for _ in range(10):
            await second.step()
        assert state.rows_["churn"]["v1"] == 204  # two full windows, 66 rows still open
        assert len(log.pending[("churn", 0)]) == 22

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


def test_failed_writes_are_retried_in_order_and_lose_or_double_nothing(
    registry: ModelRegistry,
) -> None:
    log = FakeLog()
    for entry in entries(90, 3, seed=4):  # 270 rows: windows of 102, 102, then 66 on expiry
        log.add("churn", *entry)
    # Commit calls 1-3 fail (the 2nd after its write landed: only the reply was lost), and
    # so does call 5; kept-prediction writes 2, 3 and 9 fail.
    state = FlakyState(fail={1, 3, 5}, landed=frozenset({2}))
    feedback = FlakyFeedback(fail={2, 3, 9})
    clock = [1_000.0]
    monitor = make(registry, log, state, feedback=feedback, clock=clock)
    seen_failing = []

    async def scenario() -> None:
        await monitor.housekeeping()
        for _ in range(60):
            await monitor.step()
            owned = monitor.owned["churn"]
            # while a write is behind, the model is not read further: what waits stays small
            assert len(owned.held) <= 1 and len(owned.unsaved) <= 1
            if owned.unsaved:  # nothing of the uncommitted window is acknowledged
                first = owned.unsaved[0].window.first_id
                assert first in log.pending[("churn", 0)]
                seen_failing.append(monitor.failing)
        clock[0] = 2_000.0  # the last window's time is up
        await monitor.step()

    asyncio.run(scenario())
    assert seen_failing and all(seen_failing)  # /readyz said not ready meanwhile
    assert monitor.failing is None and monitor.failures == 0  # and ready again after
    assert state.rows_["churn"]["v1"] == 270
    history = sorted(state.history_[("churn", "v1")], key=lambda w: w["index"])
    assert [w["index"] for w in history] == [0, 1, 2]
    assert [w["rows"] for w in history] == [102, 102, 66]
    assert all(a["last_id"] < b["first_id"] for a, b in itertools.pairwise(history))
    assert log.pending[("churn", 0)] == {}  # every entry acknowledged, once committed
    assert feedback.remembered == 90  # every batch's predictions kept exactly once
    failures = monitor.metrics.write_failures
    assert failures.labels("churn", "window")._value.get() == 4
    assert failures.labels("churn", "feedback")._value.get() == 3


def test_a_lost_lease_during_a_failed_commit_hands_the_window_over(
    registry: ModelRegistry,
) -> None:
    log = FakeLog()
    for entry in entries(40, 3, seed=5):  # one window of 102 rows closes, 18 rows stay open
        log.add("churn", *entry)
    state = FlakyState(fail=set(range(1, 100)))

    async def scenario() -> None:
        first = make(registry, log, state)
        await first.housekeeping()
        for _ in range(6):
            await first.step()
        assert first.owned["churn"].unsaved and "churn" not in state.rows_
        state.fail.clear()  # the outage ends, having outlasted the lease:
        state.leases["churn"] = "another replica"
        await first.step()
        assert "churn" not in first.owned
        # nothing acknowledged (the 35th entry closed the window; no read since): all claimable
        assert len(log.pending[("churn", 0)]) == log.delivered[("churn", 0)] == 35
        state.leases.clear()
        second = make(registry, log, state)
        await second.housekeeping()
        await second.step()

    asyncio.run(scenario())
    assert state.rows_["churn"]["v1"] == 102
    assert len(log.pending[("churn", 0)]) == 6  # the open window's entries


def test_the_lag_behind_the_log_is_exported_and_goes_with_the_model(
    registry: ModelRegistry,
) -> None:
    log, state = FakeLog(), FakeState()
    for entry in entries(60, 5, seed=4):
        log.add("churn", *entry)
    monitor = make(registry, log, state)

    def lag() -> float | None:
        samples = [s for m in monitor.metrics.lag.collect() for s in m.samples]
        return next((s.value for s in samples if s.labels["model"] == "churn"), None)

    async def scenario() -> list[float | None]:
        await monitor.housekeeping()
        seen = [lag()]  # nothing read yet
        await monitor.step()  # 7 of 60 entries read
        await monitor.housekeeping()
        seen.append(lag())
        expected = await log.lag_seconds("churn")
        for _ in range(10):
            await monitor.step()
        await monitor.housekeeping()
        seen += [expected, lag()]
        state.leases["churn"] = "someone else"
        await monitor.renew()
        seen.append(lag())
        return seen

    first, behind, expected, caught_up, gone = asyncio.run(scenario())
    assert first == 0.0
    assert behind == expected and expected > 0
    assert caught_up == 0.0
    assert gone is None  # the replica that reads it now reports it


def test_a_log_spread_over_three_streams_survives_a_crash_with_every_row_once(
    registry: ModelRegistry,
) -> None:
    log, state = FakeLog(), FakeState()
    for shard in range(3):  # 90 entries of 3 rows: 270 rows, 90 on each stream
        for entry in entries(30, 3, seed=10 + shard):
            log.add("churn", *entry, shard=shard)
    clock = [1_000.0]

    async def scenario() -> None:
        first = make(registry, log, state, clock=clock)
        await first.housekeeping()
        assert first.owned["churn"].shards == {0, 1, 2}
        for _ in range(3):  # 7 entries of each stream a step: 189 rows, one window closed
            await first.step()
        assert state.rows_["churn"]["v1"] >= 100
        assert any(log.pending[("churn", s)] for s in range(3))  # the open window's entries
        state.leases.clear()  # the first replica dies; its lease runs out
        second = make(registry, log, state, clock=clock)
        await second.housekeeping()  # claims what is pending on each stream
        for _ in range(10):
            await second.step()
        clock[0] = 2_000.0  # the last window's time is up
        await second.step()

    asyncio.run(scenario())
    assert state.rows_["churn"]["v1"] == 270  # nothing lost, nothing counted twice
    history = sorted(state.history_[("churn", "v1")], key=lambda w: w["index"])
    assert [w["index"] for w in history] == list(range(len(history)))
    assert sum(w["rows"] for w in history) == 270
    assert all(log.pending[("churn", s)] == {} for s in range(3))
    assert set(state.cursor["churn"]) == {"v1", "v1@1", "v1@2"}


@pytest.mark.parametrize(("start_from", "rows"), [("0", 120), ("$", 60)])
def test_a_stream_that_appears_later_is_read_from_its_first_entry(
    registry: ModelRegistry, start_from: str, rows: int
) -> None:
    """With start_from ``$`` the log's first 60 rows, there before the monitor, are
    skipped; the stream that joins later is read whole either way."""
    log, state = FakeLog(), FakeState()
    for entry in entries(20, 3, seed=20):
        log.add("churn", *entry)
    clock = [1_000.0]
    monitor = make(registry, log, state, clock=clock, start_from=start_from)

    async def scenario() -> None:
        await monitor.housekeeping()
        for _ in range(4):
            await monitor.step()
        for entry in entries(20, 3, seed=21):  # the router now spreads the log over two
            log.add("churn", *entry, shard=1)
        await monitor.step()
        assert monitor.owned["churn"].shards == {0}  # not known before the next look
        await monitor.housekeeping()
        assert monitor.owned["churn"].shards == {0, 1}
        for _ in range(4):
            await monitor.step()
        clock[0] = 2_000.0
        await monitor.step()

    asyncio.run(scenario())
    assert state.rows_["churn"]["v1"] == rows
    assert log.pending[("churn", 0)] == {} and log.pending[("churn", 1)] == {}


def test_a_stream_the_last_owner_never_found_is_read_whole_by_the_next(
    registry: ModelRegistry,
) -> None:
    """start_from ``$`` skips what was logged before the monitor came, once: a replica
    taking over a log already read reads a stream its predecessor had not found yet from
    its first entry."""
    log, state = FakeLog(), FakeState()
    for entry in entries(20, 3, seed=30):  # before the monitor: skipped
        log.add("churn", *entry)
    clock = [1_000.0]
    first = make(registry, log, state, clock=clock, start_from="$")

    async def scenario() -> None:
        await first.housekeeping()
        for entry in entries(20, 3, seed=31, start_ms=2_000_000):
            log.add("churn", *entry)
        for _ in range(4):
            await first.step()
        for entry in entries(20, 3, seed=32, start_ms=3_000_000):
            log.add("churn", *entry, shard=1)
        # the first replica dies before its next look at the streams
        del state.leases["churn"]
        second = make(registry, log, state, clock=clock, start_from="$")
        await second.housekeeping()
        assert second.owned["churn"].shards == {0, 1}
        for _ in range(4):
            await second.step()
        clock[0] = 2_000.0
        await second.step()

    asyncio.run(scenario())
    assert state.rows_["churn"]["v1"] == 120
