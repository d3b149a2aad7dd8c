"""The reconcile loop over fakes: each row of docs/rollouts.md's semantics table."""

from __future__ import annotations

from tests.unit.rollout.conftest import Harness, make, rollout, synchronously


@synchronously
async def test_a_good_canary_walks_every_step_and_is_promoted(harness: Harness) -> None:
    harness.evidence.serve("v1", 100)
    harness.evidence.serve("v2", 50)
    await harness.run(1)
    assert harness.status().phase == "Progressing"
    assert (await harness.route()).weight == 10
    await harness.run(33)  # the 30 s pause is over, and the checks in it passed
    assert (await harness.route()).weight == 50
    await harness.run(10)  # the analysis step's check passed
    assert (await harness.route()).weight == 100
    assert harness.status().phase == "Progressing"  # promotion waits for a check at 100%
    await harness.run(10)
    st = harness.status()
    assert st.phase == "Promoted", st.message
    route = await harness.route()
    assert (route.stable, route.candidate, route.mode) == ("v2", None, None)
    assert [t.phase for t in st.history] == ["Progressing", "Promoted"]
    states = {c.type: c.status for c in st.conditions}
    assert states == {"Progressing": "False", "Paused": "False", "Healthy": "True"}
    assert {m.name: m.verdict for m in st.metrics} == {"success": "pass", "p99": "pass"}
    assert harness.metric("sluice_rollout_phase", model="churn", phase="Promoted") == 1


@synchronously
async def test_a_raised_error_rate_aborts_after_failure_limit_checks(harness: Harness) -> None:
    harness.evidence.serve("v1", 100)
    harness.evidence.serve("v2", 50, err=5)
    await harness.run(15)
    assert harness.status().phase == "Progressing"  # one failed check of two allowed
    assert harness.status().failures == 1
    await harness.run(10)
    st = harness.status()
    assert st.phase == "Aborted"
    assert {c.type: c.status for c in st.conditions}["Healthy"] == "False"
    assert "success=0.9" in st.message and "samples" in st.message
    route = await harness.route()
    assert (route.stable, route.candidate, route.weight, route.mirror) == ("v1", None, 0, 0)
    kinds = [(e[1], e[2]) for e in harness.source.events]
    assert ("Warning", "AnalysisFailed") in kinds
    assert harness.metric("sluice_rollout_aborts_total", model="churn") == 1
    assert harness.metric("sluice_rollout_metric_value", model="churn", metric="success") == 0.9


@synchronously
async def test_no_traffic_is_inconclusive_then_stops_and_never_promotes(
    harness: Harness,
) -> None:
    await harness.run(15)
    assert harness.status().phase == "Inconclusive"  # holding, still checking
    await harness.run(200)
    st = harness.status()
    assert (st.phase, st.paused_reason) == ("Paused", "TooLittleEvidence")
    assert "0 samples, need 200" in st.message
    assert (await harness.route()).stable == "v1"
    assert "Promoted" not in [t.phase for t in st.history]


@synchronously
async def test_traffic_that_vanishes_mid_rollout_holds_the_step(harness: Harness) -> None:
    harness.evidence.serve("v1", 100)
    harness.evidence.serve("v2", 50)
    await harness.run(45)
    assert harness.status().step >= 2
    harness.evidence.per_second.clear()
    step = harness.status().step
    await harness.run(25)
    assert harness.status().step == step and harness.status().phase == "Inconclusive"
    await harness.run(30)
    assert harness.status().phase == "Paused"
    assert harness.status().step == step


@synchronously
async def test_a_slow_candidate_is_rolled_back(harness: Harness) -> None:
    harness.evidence.serve("v1", 100)
    harness.evidence.serve("v2", 50, ms=300)
    await harness.run(25)
    st = harness.status()
    assert st.phase == "Aborted"
    assert "p99=" in st.message


@synchronously
async def test_a_route_changed_by_hand_pauses_and_is_not_overwritten(harness: Harness) -> None:
    harness.evidence.serve("v1", 100)
    harness.evidence.serve("v2", 50)
    await harness.run(2)
    mine = (await harness.route()).model_copy(update={"weight": 77})
    await harness.routes.put(mine)
    await harness.run(60)
    st = harness.status()
    assert st.phase == "Paused" and st.paused_reason == "RouteChangedByHand"
    assert "outside the controller" in st.message
    assert (await harness.route()).weight == 77
    harness.act("resume")
    await harness.run(100)
    assert harness.status().phase == "Promoted"


@synchronously
async def test_a_pause_without_duration_waits_for_a_person() -> None:
    h = make(rollout(strategy={"canary": {"steps": [{"setWeight": 20}, {"pause": {}},
                                                     {"setWeight": 60}]}}))  # fmt: skip
    h.evidence.serve("v1", 100)
    h.evidence.serve("v2", 50)
    await h.run(60)
    assert h.status().phase == "Paused" and h.status().paused_reason == "PausedByStep"
    assert (await h.route()).weight == 20
    h.act("promote")
    await h.run(2)
    assert (await h.route()).weight == 60
    await h.run(20)
    assert h.status().phase == "Promoted"


@synchronously
async def test_abort_retry_and_set_weight_by_hand(harness: Harness) -> None:
    harness.evidence.serve("v1", 100)
    harness.evidence.serve("v2", 50)
    await harness.run(2)
    harness.act("set-weight", weight=35)
    await harness.run(2)
    assert harness.status().phase == "Paused"
    assert (await harness.route()).weight == 35
    harness.act("abort")
    await harness.run(1)
    assert harness.status().phase == "Aborted"
    assert (await harness.route()).candidate is None
    harness.act("retry")
    await harness.run(1)
    st = harness.status()
    assert (st.phase, st.step) == ("Progressing", 1)
    assert (await harness.route()).weight == 10
    writes = [t.reason for t in st.history]
    assert writes[-3:] == ["AbortedByUser", "RolloutStarted"][-3:] or "RolloutStarted" in writes


@synchronously
async def test_a_new_controller_resumes_at_the_same_step(harness: Harness) -> None:
    harness.evidence.serve("v1", 100)
    harness.evidence.serve("v2", 50)
    await harness.run(20)
    before = harness.status()
    assert before.step == 1  # in the 30 s pause
    successor = make(source=harness.source, routes=harness.routes, evidence=harness.evidence)
    successor.now = harness.now
    await successor.run(1)
    after = successor.status()
    assert (after.step, after.phase, after.started_at) == (
        before.step,
        "Progressing",
        before.started_at,
    )
    assert "RouteChangedByHand" not in [t.reason for t in after.history]
    await successor.run(80)
    assert successor.status().phase == "Promoted"


@synchronously
async def test_a_candidate_without_an_upstream_is_degraded_until_it_has_one() -> None:
    h = make(rollout(candidate="v3"))
    await h.run(2)
    assert h.status().phase == "Degraded"
    assert "v3" in h.status().message
    route = await h.route()
    ups = {**route.upstreams, "v3": route.upstreams["v2"]}
    await h.routes.put(route.model_copy(update={"upstreams": ups}))
    await h.run(1)
    assert h.status().phase == "Progressing"


@synchronously
async def test_a_candidate_failing_while_it_waits_for_a_person_is_rolled_back() -> None:
    h = make(rollout(strategy={"canary": {"steps": [{"setWeight": 30}, {"pause": {}}]}}))
    h.evidence.serve("v1", 100)
    h.evidence.serve("v2", 50)
    await h.run(15)
    assert (h.status().phase, h.status().paused_reason) == ("Paused", "PausedByStep")
    h.evidence.serve("v2", 50, err=10)
    await h.run(25)
    assert h.status().phase == "Aborted"
    assert (await h.route()).candidate is None
