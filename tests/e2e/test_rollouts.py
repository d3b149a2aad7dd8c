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
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from sluice.core.registry import ModelRegistry
from sluice.trainer.data import generate_churn
from sluice.trainer.service import train_and_register
from tests.support.procs import Process, free_port, redis_server, running, sluice_command

pytestmark = pytest.mark.e2e

TOKEN = "rollout-e2e-token"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
MODEL = "churn"


@dataclass
class Stack:
    work: Path
    env: dict[str, str]
    servers: dict[str, Process]
    routers: list[str]
    controllers: list[Process]
    rows: list[dict[str, Any]]
    start_server: Callable[[str], Process]

    @property
    def controller(self) -> str:
        return self.controllers[0].url or ""

    def upstreams(self) -> dict[str, str]:
        return {v: p.url or "" for v, p in self.servers.items()}

    def reset_route(self) -> None:
        body = {"upstreams": self.upstreams(), "stable": "v1"}
        resp = httpx.put(f"{self.routers[0]}/admin/v1/routes/{MODEL}", json=body, headers=ADMIN)
        assert resp.status_code == 200, resp.text

    def route(self) -> dict[str, Any]:
        doc: dict[str, Any] = httpx.get(
            f"{self.routers[0]}/admin/v1/routes/{MODEL}", headers=ADMIN
        ).json()
        return doc

    def sluice(self, *args: str) -> str:
        done = subprocess.run(
            [*sluice_command(), *args], capture_output=True, text=True, timeout=60,
            env={**self.env, "SLUICE_ROLLOUT_URL": self.controller},
        )  # fmt: skip
        assert done.returncode == 0, f"sluice {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def apply(self, doc: dict[str, Any]) -> None:
        path = self.work / f"{doc['metadata']['name']}-{time.monotonic_ns()}.yaml"
        path.write_text(yaml.safe_dump(doc))
        assert "applied" in self.sluice("rollout", "apply", "-f", str(path))

    def status(self, name: str = MODEL) -> dict[str, Any]:
        for proc in self.controllers:
            if proc.popen.poll() is None:
                resp = httpx.get(f"{proc.url}/admin/v1/rollouts/{name}", headers=ADMIN)
                assert resp.status_code == 200, resp.text
                st: dict[str, Any] = resp.json()["status"]
                return st
        raise AssertionError("no controller runs")

    def wait_phase(self, *phases: str, timeout: float = 90.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if st["phase"] in phases:
                return st
            if time.monotonic() > deadline:
                raise AssertionError(f"phase {st['phase']} after {timeout}s, not {phases}: {st}")
            time.sleep(0.1)

    def finish(self, name: str = MODEL) -> None:
        for proc in self.controllers:
            if proc.popen.poll() is None:
                httpx.delete(f"{proc.url}/admin/v1/rollouts/{name}", headers=ADMIN)
                break
        self.reset_route()


def canary(candidate: str, metrics: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": MODEL, "stable": "v1", "candidate": candidate,
        "strategy": {"canary": {"steps": [
            {"setWeight": 20}, {"pause": {"duration": "3s"}}, {"setWeight": 50},
            {"analysis": {}}, {"setWeight": 100},
        ]}},
        "analysis": {"interval": "1s", "window": "2s", "minSamples": 20, "failureLimit": 2,
                     "inconclusiveLimit": 8, "metrics": metrics},
    }  # fmt: skip
    spec.update(more)
    return {"apiVersion": "serving.sluice.dev/v1alpha1", "kind": "ModelRollout",
            "metadata": {"name": MODEL}, "spec": spec}  # fmt: skip


SUCCESS = {"name": "success", "builtin": "successRate", "condition": ">= 0.95"}
P99 = {"name": "p99", "builtin": "latencyP99", "condition": "<= 0.15"}


@contextmanager
def traffic(stack: Stack, workers: int = 3) -> Iterator[Counter[int]]:
    """User requests through both routers until the block ends; statuses counted."""
    stop = threading.Event()
    seen: Counter[int] = Counter()

    def user(i: int) -> None:
        with httpx.Client(timeout=10) as client:
            n = i
            while not stop.is_set() and n < 10**6:
                router = stack.routers[n % 2]
                row = stack.rows[n % len(stack.rows)]
                try:
                    resp = client.post(f"{router}/v1/models/{MODEL}:predict",
                                       json={"instances": [row]})  # fmt: skip
                    seen[resp.status_code] += 1
                except httpx.HTTPError:
                    seen[0] += 1
                n += workers
                time.sleep(0.004)

    threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(workers)]
    for t in threads:
        t.start()
    try:
        yield seen
    finally:
        stop.set()
        for t in threads:
            t.join(15)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("rollouts")
    table = generate_churn(1500, seed=5)
    registry = ModelRegistry(work / "registry")
    train_and_register(table, model=MODEL, version="v1", registry=registry, algorithm="logreg")
    same = generate_churn(1500, seed=6)  # another sample of the same world: a good candidate
    train_and_register(same, model=MODEL, version="v2", registry=registry, algorithm="logreg")
    flipped = table.assign(churned=1 - table["churned"])  # answers the opposite: disagrees
    train_and_register(flipped, model=MODEL, version="v3", registry=registry, algorithm="logreg")
    card = registry.card(MODEL, "v1")
    names = [f.name for f in card.features]
    rows = [{k: _plain(v) for k, v in r.items() if k in names or k == card.entity_key}
            for r in table.head(300).to_dict("records")]  # fmt: skip
    with ExitStack() as stack_:
        redis_url, _ = stack_.enter_context(redis_server(work / "redis"))
        env = {
            **os.environ, "SLUICE_REDIS_URL": redis_url, "SLUICE_ADMIN_TOKEN": TOKEN,
            "SLUICE_ROUTER_FEATURE_LOOKUP": "off", "SLUICE_ROUTER_TALLY_FLUSH_SECONDS": "0.1",
            "SLUICE_ROLLOUT_TICK_SECONDS": "0.2", "SLUICE_ROLLOUT_LEASE_SECONDS": "2",
            "SLUICE_ROLLOUT_SETTLE_SECONDS": "0.3", "SLUICE_DRIFT_MONITOR_WINDOW_SIZE": "200",
            "SLUICE_DRIFT_MONITOR_MIN_WINDOW_SIZE": "100",
            "SLUICE_DRIFT_MONITOR_WINDOW_SECONDS": "3",
        }  # fmt: skip

        def serve(name: str, *args: str) -> Process:
            port = free_port()
            argv = [*sluice_command(), "serve", name, *args, "--port", str(port)]
            return stack_.enter_context(running(
                argv, log=work / f"{name}-{port}.log", env=env,
                ready_url=f"http://127.0.0.1:{port}/readyz",
            ))  # fmt: skip

        def start_server(version: str) -> Process:
            reg = ["--registry", str(registry.root), "--model", MODEL]
            return serve("model-server", *reg, "--version", version)

        servers = {v: start_server(v) for v in ("v1", "v2", "v3")}
        routers = [serve("router", "--registry", str(registry.root)).url or "" for _ in range(2)]
        drift = serve("drift-monitor", "--registry", str(registry.root))
        env["SLUICE_ROLLOUT_DRIFT_MONITOR_URL"] = drift.url or ""
        controllers = [serve("rollout-controller") for _ in range(2)]
        s = Stack(work, env, servers, routers, controllers, rows, start_server)
        s.reset_route()
        yield s


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


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


def _leader(stack: Stack) -> Process:
    for proc in stack.controllers:
        if proc.popen.poll() is None:
            text = httpx.get(f"{proc.url}/metrics").text
            if "sluice_rollout_leader 1.0" in text:
                return proc
    raise AssertionError("no controller leads")


def test_the_leader_killed_mid_rollout_is_replaced_and_no_step_is_repeated(stack: Stack) -> None:
    doc = canary("v2", [SUCCESS])
    doc["spec"]["strategy"]["canary"]["steps"][1] = {"pause": {"duration": "8s"}}
    stack.apply(doc)
    with traffic(stack) as seen:
        deadline = time.monotonic() + 30
        while stack.status()["step"] != 1:
            assert time.monotonic() < deadline, stack.status()
            time.sleep(0.05)
        leader = _leader(stack)
        leader.stop(signal.SIGKILL)
        stack.controllers.remove(leader)
        st = stack.status()
        assert (st["phase"], st["step"]) == ("Progressing", 1)
        st = stack.wait_phase("Promoted", "Aborted", timeout=60)
    assert st["phase"] == "Promoted", st
    assert _leader(stack) is not leader
    events = httpx.get(f"{stack.controller}/admin/v1/rollouts/{MODEL}/events", headers=ADMIN)
    done = [e["message"].split(" done")[0] for e in events.json()["events"]
            if e["reason"] == "StepDone"]  # fmt: skip
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
