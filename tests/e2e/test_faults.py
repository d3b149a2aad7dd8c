"""Faults end to end on the rollout stack (tests/support/rollouts.py), every part a real
process, user traffic running through both routers all along.

What a user would check: a model-server version killed under load costs no user request
(stable answers), its breaker opens and closes by itself when the version is back; the
router restarted mid-rollout loses no count and the rollout goes on at its step; the rollout
controller restarted mid-rollout goes on at its step; Redis frozen, or killed and started
again, mid-rollout holds the rollout (no step, no rollback on missing data), users are
answered all along, and the rollout and the prediction log go on after.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis.asyncio as aioredis

from sluice.core.predlog import stream_key
from sluice.core.tally import read_window
from tests.support.procs import Process, redis_on
from tests.support.rollouts import (
    AOF,
    MODEL,
    SUCCESS,
    Stack,
    canary,
    gauge,
    leader,
    port_of,
    traffic,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def clean(stack: Stack) -> Iterator[None]:
    """No rollout left over and stable alone, even after a failed test."""
    yield
    stack.finish()


def stopped_cleanly(proc: Process) -> bool:
    """SIGTERM ran the shutdown to its end (uvicorn then exits by the signal itself)."""
    code = proc.stop(signal.SIGTERM)
    return code in (0, -signal.SIGTERM) and "Application shutdown complete" in proc.output()


def wait_for(what: str, done: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"not {what} after {timeout}s"
        time.sleep(0.1)


def breaker(stack: Stack, version: str) -> list[float | None]:
    """Every router's ``sluice_router_circuit_open`` for the version."""
    return [gauge(r, "sluice_router_circuit_open", model=MODEL, version=version)
            for r in stack.routers]  # fmt: skip


def ready(proc: Process) -> bool:
    return httpx.get(f"{proc.url}/readyz", timeout=10).status_code == 200


def slow_canary(pause: str) -> dict[str, object]:
    doc = canary("v2", [SUCCESS])
    doc["spec"]["strategy"]["canary"]["steps"][1] = {"pause": {"duration": pause}}
    doc["spec"]["analysis"]["inconclusiveLimit"] = 40  # a loaded machine's thin first seconds
    return doc


def test_a_version_killed_under_load_costs_no_request_and_its_breaker_closes_again(
    stack: Stack,
) -> None:
    stack.put_route(candidate="v2", mode="canary", weight=50)
    killed = stack.servers["v2"]
    port = port_of(killed)
    with traffic(stack) as seen:
        wait_for("answering", lambda: seen[200] >= 50)
        killed.stop(signal.SIGKILL)
        wait_for("open on every router", lambda: breaker(stack, "v2") == [1.0, 1.0])
        assert seen[200] > 0
        stack.servers["v2"] = stack.start_server("v2", port=port)  # back where it was
        wait_for("closed on every router", lambda: breaker(stack, "v2") == [0.0, 0.0])
        answered = set()
        with httpx.Client(timeout=10) as client:
            for row in stack.rows[:100]:
                resp = client.post(f"{stack.routers[0]}/v1/models/{MODEL}:predict",
                                   json={"instances": [row]})  # fmt: skip
                assert resp.status_code == 200, resp.text
                answered.add(resp.headers["x-sluice-version"])
    assert answered == {"v1", "v2"}  # the version answers its share again
    assert set(seen) == {200}, seen  # stable stood in for every call the dead version lost
    fallbacks = gauge(stack.routers[1], "sluice_router_fallbacks_total", model=MODEL, version="v2")
    assert fallbacks and fallbacks > 0


def tallied(stack: Stack, start: int, end: int) -> int:
    """Answers (2xx) the routers counted in Redis over the whole seconds [start, end)."""

    async def read() -> int:
        client = aioredis.from_url(stack.env["SLUICE_REDIS_URL"])
        try:
            counts = await read_window(client, MODEL, start, end)
        finally:
            await client.aclose()
        return int(sum(c.get("ok", 0) for c in counts.values()))

    return asyncio.run(read())


def test_the_router_restarted_mid_rollout_loses_nothing_and_the_rollout_goes_on(
    stack: Stack,
) -> None:
    start = int(time.time()) + 1
    time.sleep(start - time.time())  # the counts below are this test's own
    stack.apply(slow_canary("10s"))
    restarted = stack.router_procs[0]
    with traffic(stack) as seen:
        before = stack.wait_step(1)
        route = stack.route(stack.routers[1])
        assert (route["candidate"], route["weight"]) == ("v2", 20)
        assert stopped_cleanly(restarted)
        stack.router_procs[0] = stack.start_router(port=port_of(restarted))
        again = stack.route()  # the restarted router's table, read back from Redis
        st = stack.status()  # read after: a step still 1 here was 1 when ``again`` was read
        wait_for("one table", lambda: stack.route() == stack.route(stack.routers[1]), 30)
        if st["step"] == before["step"]:  # still pausing: the same route, not rewritten
            assert (again["revision"], again["weight"]) == (route["revision"], 20)
        assert st["step"] >= before["step"]
        st = stack.wait_phase("Promoted", "Aborted", "Paused", timeout=90)
    assert st["phase"] == "Promoted", st
    assert sorted(stack.steps_done()) == [f"step {i}" for i in range(5)]  # each once
    assert set(seen) <= {200, 0}, seen  # no answer only while the router was down
    assert seen[200] > 0
    end = int(time.time()) + 1
    wait_for("tallied", lambda: tallied(stack, start, end) >= seen[200], timeout=30)
    assert tallied(stack, start, end) == seen[200]  # every answer counted, none twice


def test_the_controller_restarted_mid_rollout_goes_on_at_its_step(stack: Stack) -> None:
    stack.apply(slow_canary("10s"))
    with traffic(stack) as seen:
        before = stack.wait_step(1)
        first = stack.controllers[0]
        for proc in stack.controllers:
            assert stopped_cleanly(proc)  # every replica: a plain restart
        stack.controllers[:] = [stack.start_controller(port=port_of(first))]
        st = stack.status()
        assert st["phase"] == "Progressing" and st["step"] >= before["step"], st
        assert st["stepStartedAt"] == before["stepStartedAt"] or st["step"] > before["step"]
        st = stack.wait_phase("Promoted", "Aborted", "Paused", timeout=90)
    assert st["phase"] == "Promoted", st
    assert leader(stack) is stack.controllers[0]
    assert sorted(stack.steps_done()) == [f"step {i}" for i in range(5)]  # each once
    assert set(seen) == {200}, seen


def test_redis_frozen_mid_rollout_holds_it_and_it_goes_on_after(stack: Stack) -> None:
    stack.apply(slow_canary("4s"))
    pid = stack.redis.popen.pid
    with traffic(stack) as seen:
        stack.wait_step(1)
        holder = leader(stack)
        os.kill(pid, signal.SIGSTOP)
        try:  # frozen until the leader says it holds (its Redis calls time out): /readyz
            # turns 503 on its own ping first, the reconcile loop's call times out after
            wait_for("holding", lambda: not ready(holder), timeout=60)
            wait_for("holding", lambda: "holding every rollout" in holder.output(), timeout=60)
        finally:
            os.kill(pid, signal.SIGCONT)
        st = stack.wait_phase("Promoted", "Aborted", "Paused", timeout=90)
    assert st["phase"] == "Promoted", st
    reasons = [e["reason"] for e in stack.events()]
    assert "CheckFailed" not in reasons and "AnalysisFailed" not in reasons, reasons
    assert sorted(stack.steps_done()) == [f"step {i}" for i in range(5)]  # each once
    held = [p.output() for p in stack.controllers]
    assert any("holding every rollout" in out for out in held)
    assert set(seen) == {200}, seen  # users never waited on Redis


def logged(stack: Stack) -> int:
    """Entries in the model's prediction-log stream."""

    async def read() -> int:
        client = aioredis.from_url(stack.env["SLUICE_REDIS_URL"])
        try:
            return int(await client.xlen(stream_key(MODEL)))
        finally:
            await client.aclose()

    return asyncio.run(read())


def test_redis_killed_and_started_again_mid_rollout_holds_it_and_everything_goes_on(
    stack: Stack,
) -> None:
    stack.apply(slow_canary("4s"))
    port = int(stack.env["SLUICE_REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
    with traffic(stack) as seen:
        stack.wait_step(1)
        holder = leader(stack)
        mark = len(holder.output())  # what it logs from here on
        stack.redis.stop(signal.SIGKILL)
        wait_for("holding", lambda: "holding every rollout" in holder.output()[mark:], 60)
        answered = seen[200]
        wait_for("answering without Redis", lambda: seen[200] >= answered + 30, timeout=60)
        stack.redis = stack.exits.enter_context(redis_on(port, stack.work / "redis", *AOF))
        wait_for("reconciling again", lambda: "reachable again" in holder.output()[mark:], 60)
        after = logged(stack)
        wait_for("the prediction log going on", lambda: logged(stack) >= after + 30, 60)
        st = stack.wait_phase("Promoted", "Aborted", "Paused", timeout=90)
    assert st["phase"] == "Promoted", st
    reasons = [e["reason"] for e in stack.events()]
    assert "CheckFailed" not in reasons and "AnalysisFailed" not in reasons, reasons
    assert sorted(stack.steps_done()) == [f"step {i}" for i in range(5)]  # each once
    assert set(seen) == {200}, seen  # users never waited on Redis
