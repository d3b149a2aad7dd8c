"""Declared rollouts end to end, every part a real process on 127.0.0.1: Redis, three
model-server versions, two routers sharing the traffic, the drift monitor and two rollout
controllers (one leads), with user traffic running through both routers all along.

What a user would check: a good candidate goes through its steps to 100% and is promoted;
a candidate that fails, one that is slow and one whose answers disagree with stable are
rolled back automatically with no failed user request; no traffic never promotes; killing
the leading controller mid-rollout loses no step; blue/green switches and switches back;
a shadow run is promoted on its agreement figures.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from tests.support.rollouts import MODEL, P99, SUCCESS, Stack, canary, leader, traffic

pytestmark = pytest.mark.e2e


def test_a_good_candidate_goes_through_every_step_and_is_promoted(stack: Stack) -> None:
    stack.apply(canary("v2", [SUCCESS, P99]))
    weights = set()
    with traffic(stack) as seen:
        deadline = time.monotonic() + 90
        while stack.status()["phase"] not in ("Promoted", "Aborted", "Paused"):
            weights.add(stack.route()["weight"])
            assert time.monotonic() < deadline, stack.status()
            time.sleep(0.1)
    st = stack.status()
    assert st["phase"] == "Promoted", st
    assert {20, 50}.issubset(weights)
    route = stack.route()
    assert (route["stable"], route["candidate"]) == ("v2", None)
    assert set(seen) == {200}, seen
    assert all(m["verdict"] == "pass" and m["samples"] >= 20 for m in st["metrics"])
    out = stack.sluice("rollout", "get", MODEL)
    assert "Promoted" in out and "success" in out
    stack.finish()


def test_a_failing_candidate_is_rolled_back_with_no_failed_user_request(stack: Stack) -> None:
    stack.apply(canary("v2", [SUCCESS]))
    with traffic(stack) as seen:
        stack.wait_phase("Progressing")
        while stack.route()["weight"] < 20:
            time.sleep(0.05)
        stack.servers["v2"].stop(signal.SIGKILL)  # the candidate dies: the router falls back
        st = stack.wait_phase("Aborted", "Promoted", timeout=30)
    assert st["phase"] == "Aborted", st
    assert "success=" in st["message"]
    route = stack.route()
    assert (route["stable"], route["candidate"], route["weight"]) == ("v1", None, 0)
    assert set(seen) == {200}, seen  # stable answered for the dead candidate
    stack.servers["v2"] = stack.start_server("v2")
    stack.finish()


def test_a_slow_candidate_is_rolled_back(stack: Stack) -> None:
    slow = stack.servers["v2"]
    stop = threading.Event()

    def stall() -> None:  # the candidate's process freezes 300 ms of every 400 ms
        while not stop.is_set():
            os.kill(slow.popen.pid, signal.SIGSTOP)
            time.sleep(0.3)
            os.kill(slow.popen.pid, signal.SIGCONT)
            time.sleep(0.1)

    stack.apply(canary("v2", [P99]))
    staller = threading.Thread(target=stall, daemon=True)
    try:
        with traffic(stack) as seen:
            stack.wait_phase("Progressing")
            staller.start()
            st = stack.wait_phase("Aborted", "Promoted", timeout=40)
    finally:
        stop.set()
        staller.join(5)
        os.kill(slow.popen.pid, signal.SIGCONT)
    assert st["phase"] == "Aborted", st
    assert "p99=" in st["message"]
    assert set(seen) == {200}, seen
    stack.finish()


def test_a_candidate_whose_answers_disagree_is_rolled_back(stack: Stack) -> None:
    agreement = {"name": "agreement", "builtin": "shadowAgreement", "condition": ">= 0.9"}
    outputs = {"name": "outputs", "builtin": "predictionDrift", "condition": "== 0"}
    doc = canary("v3", [agreement, outputs])
    doc["spec"]["strategy"]["canary"]["steps"].insert(0, {"setMirror": 100})
    stack.apply(doc)
    with traffic(stack) as seen:
        st = stack.wait_phase("Aborted", "Promoted", timeout=40)
    assert st["phase"] == "Aborted", st
    assert "agreement=" in st["message"]
    assert stack.route()["candidate"] is None
    assert set(seen) == {200}, seen
    stack.finish()


def test_no_traffic_is_inconclusive_then_paused_never_promoted(stack: Stack) -> None:
    doc = canary("v2", [SUCCESS])
    doc["spec"]["analysis"]["inconclusiveLimit"] = 3
    stack.apply(doc)
    st = stack.wait_phase("Inconclusive", "Promoted", "Paused", timeout=30)
    assert st["phase"] == "Inconclusive", st
    st = stack.wait_phase("Paused", "Promoted", timeout=30)
    assert (st["phase"], st["pausedReason"]) == ("Paused", "TooLittleEvidence")
    assert "0 samples, need 20" in st["message"]
    assert stack.route()["stable"] == "v1"
    stack.finish()


def test_the_leader_killed_mid_rollout_is_replaced_and_no_step_is_repeated(stack: Stack) -> None:
    doc = canary("v2", [SUCCESS])
    doc["spec"]["strategy"]["canary"]["steps"][1] = {"pause": {"duration": "8s"}}
    stack.apply(doc)
    with traffic(stack) as seen:
        deadline = time.monotonic() + 30
        while stack.status()["step"] != 1:
            assert time.monotonic() < deadline, stack.status()
            time.sleep(0.05)
        killed = leader(stack)
        killed.stop(signal.SIGKILL)
        stack.controllers.remove(killed)
        st = stack.status()
        assert (st["phase"], st["step"]) == ("Progressing", 1)
        st = stack.wait_phase("Promoted", "Aborted", timeout=60)
    assert st["phase"] == "Promoted", st
    assert leader(stack) is not killed
    done = stack.steps_done()
    assert sorted(done) == [f"step {i}" for i in range(5)], done  # each step once
    assert set(seen) == {200}, seen
    stack.finish()


def test_blue_green_switches_and_switches_back(stack: Stack) -> None:
    spec = {"blueGreen": {"autoPromote": True, "postPromotionAnalysis": {},
                          "scaleDownDelay": "30s"}}  # fmt: skip
    doc = canary("v2", [SUCCESS], strategy=spec)
    stack.apply(doc)
    with traffic(stack) as seen:
        deadline = time.monotonic() + 20
        while stack.route()["stable"] != "v2":
            assert time.monotonic() < deadline, stack.status()
            time.sleep(0.05)
        assert stack.route()["candidate"] == "v1"  # the old colour kept for switch-back
        stack.servers["v2"].stop(signal.SIGKILL)
        st = stack.wait_phase("Aborted", "Promoted", timeout=30)
    assert st["phase"] == "Aborted" and "switched back" in st["message"], st
    route = stack.route()
    assert (route["stable"], route["candidate"], route["mode"]) == ("v1", None, None)
    assert seen[200] > 0
    stack.servers["v2"] = stack.start_server("v2")
    stack.finish()


def test_a_shadow_run_is_promoted_on_its_agreement(stack: Stack) -> None:
    doc = canary("v2", [{"name": "agreement", "builtin": "shadowAgreement",
                         "condition": ">= 0.8"}],
                 strategy={"shadow": {"mirrorPercent": 100, "requests": 300}})  # fmt: skip
    stack.apply(doc)
    with traffic(stack) as seen:
        st = stack.wait_phase("Promoted", "Aborted", "Paused", timeout=60)
    assert st["phase"] == "Promoted", st
    agreement = st["metrics"][0]
    assert agreement["value"] >= 0.8 and agreement["samples"] >= 20
    assert stack.route()["stable"] == "v2"
    assert set(seen) == {200}, seen
    stack.finish()
