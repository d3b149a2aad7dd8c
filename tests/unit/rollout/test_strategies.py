"""Blue/green, shadow and comparisons with stable, through the reconcile loop."""

from __future__ import annotations

from tests.unit.rollout.conftest import make, rollout, synchronously

ANALYSIS = {
    "interval": "5s", "minSamples": 100, "failureLimit": 1, "inconclusiveLimit": 4,
    "metrics": [{"name": "success", "builtin": "successRate", "condition": ">= 0.99"}],
}  # fmt: skip


@synchronously
async def test_blue_green_switches_after_preview_then_keeps_the_old_colour() -> None:
    h = make(rollout(
        strategy={"blueGreen": {"autoPromote": True, "prePromotionAnalysis": {},
                                "postPromotionAnalysis": {}, "scaleDownDelay": "20s"}},
        analysis=ANALYSIS,
    ))  # fmt: skip
    h.evidence.serve("v1", 100)
    h.evidence.serve("v2", 30)  # header-pinned preview traffic
    await h.run(2)
    route = await h.route()
    assert (route.mode, route.stable, route.candidate) == ("bluegreen", "v1", "v2")
    await h.run(6)  # the pre-promotion check passed: switch
    route = await h.route()
    assert (route.mode, route.stable, route.candidate) == ("bluegreen", "v2", "v1")
    assert h.status().stage == "postPromotion"
    await h.run(25)
    route = await h.route()
    assert h.status().phase == "Promoted"
    assert (route.mode, route.stable, route.candidate) == (None, "v2", None)


@synchronously
async def test_blue_green_switches_back_when_post_promotion_analysis_fails() -> None:
    h = make(rollout(
        strategy={"blueGreen": {"autoPromote": True, "postPromotionAnalysis": {}}},
        analysis=ANALYSIS,
    ))  # fmt: skip
    h.evidence.serve("v1", 100)
    await h.run(1)
    assert (await h.route()).stable == "v2"  # no pre-promotion analysis: switched at once
    h.evidence.serve("v2", 100, err=10)
    await h.run(6)
    st = h.status()
    assert st.phase == "Aborted" and "switched back to v1" in st.message
    route = await h.route()
    assert (route.stable, route.candidate, route.mode) == ("v1", None, None)


@synchronously
async def test_blue_green_without_auto_promote_waits_for_a_person() -> None:
    h = make(rollout(strategy={"blueGreen": {}}))
    await h.run(5)
    assert h.status().phase == "Paused"
    assert h.status().paused_reason == "WaitingForPromotion"
    h.act("promote")
    await h.run(1)
    assert (await h.route()).stable == "v2"


@synchronously
async def test_a_shadow_run_is_promoted_on_its_agreement() -> None:
    h = make(rollout(
        strategy={"shadow": {"mirrorPercent": 50, "requests": 1000}},
        analysis={**ANALYSIS, "metrics": [
            {"name": "agreement", "builtin": "shadowAgreement", "condition": ">= 0.95"}]},
    ))  # fmt: skip
    h.evidence.serve("v1", 100)
    h.evidence.serve("v2", 0, sh=50, sha=49)
    await h.run(1)
    route = await h.route()
    assert (route.mode, route.mirror, route.weight) == ("shadow", 50, 0)
    await h.run(30)
    st = h.status()
    assert st.phase == "Promoted", st.message
    assert "rows" in st.message
    assert st.metrics[0].value == 0.98


@synchronously
async def test_a_shadow_run_that_disagrees_is_aborted_and_can_hand_over_to_a_canary() -> None:
    spec = {
        "strategy": {"shadow": {"duration": "10s", "then": "canary"},
                     "canary": {"steps": [{"setWeight": 25}]}},
        "analysis": {**ANALYSIS, "metrics": [
            {"name": "agreement", "builtin": "shadowAgreement", "condition": ">= 0.95"}]},
    }  # fmt: skip
    bad = make(rollout(**spec))
    bad.evidence.serve("v1", 100)
    bad.evidence.serve("v2", 0, sh=50, sha=30)
    await bad.run(7)
    assert bad.status().phase == "Aborted"
    assert (await bad.route()).mode is None
    good = make(rollout(**spec))
    good.evidence.serve("v1", 100)
    good.evidence.serve("v2", 0, sh=50, sha=50)
    await good.run(12)
    route = await good.route()
    assert (route.mode, route.weight, good.status().stage) == ("canary", 25, "canary")


COMPARE = {
    "interval": "5s", "minSamples": 200, "failureLimit": 1, "inconclusiveLimit": 50,
    "metrics": [{"name": "errors-vs-stable", "builtin": "errorRate", "compare": "stable",
                 "maxIncrease": 0.01}],
}  # fmt: skip


@synchronously
async def test_errors_no_worse_than_stable_pass_and_worse_ones_fail() -> None:
    steps = {"canary": {"steps": [{"setWeight": 50}, {"analysis": {}}]}}
    good = make(rollout(strategy=steps, analysis=COMPARE))
    good.evidence.serve("v1", 200, err=1)
    good.evidence.serve("v2", 200, err=1)
    await good.run(60)
    assert good.status().phase == "Promoted", good.status().message
    bad = make(rollout(strategy=steps, analysis=COMPARE))
    bad.evidence.serve("v1", 200, err=1)
    bad.evidence.serve("v2", 200, err=12)  # 6% vs 0.5%: worse by far more than 1%
    await bad.run(60)
    st = bad.status()
    assert st.phase == "Aborted"
    metric = st.metrics[0]
    assert metric.verdict == "fail" and metric.p_value is not None and metric.p_value <= 0.05
    assert metric.stable_value is not None and metric.value is not None
    assert metric.value > metric.stable_value


@synchronously
async def test_a_difference_inside_the_margin_on_little_traffic_stays_inconclusive() -> None:
    h = make(rollout(strategy={"canary": {"steps": [{"analysis": {}}]}},
                     analysis={**COMPARE, "minSamples": 10, "inconclusiveLimit": 3}))  # fmt: skip
    h.evidence.serve("v1", 3, err=0)
    h.evidence.serve("v2", 3, err=0)
    await h.run(18)
    assert (h.status().phase, h.status().paused_reason) == ("Paused", "TooLittleEvidence")
