"""The rollout stack the end-to-end rollout and fault tests share, every part a real process
on 127.0.0.1: Redis, three model-server versions, two routers sharing the traffic, the drift
monitor and two rollout controllers (one leads), with helpers to drive and watch it.

Every process can be stopped and started again on its own port (``restart``), so a test can
kill a part and bring it back where the others expect it.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from sluice.core.registry import ModelRegistry
from sluice.trainer.data import generate_churn
from sluice.trainer.service import train_and_register
from tests.support.procs import Process, free_port, redis_on, running, sluice_command

TOKEN = "rollout-e2e-token"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
MODEL = "churn"
SUCCESS = {"name": "success", "builtin": "successRate", "condition": ">= 0.95"}
AOF = ("--appendonly", "yes", "--appendfsync", "always")
P99 = {"name": "p99", "builtin": "latencyP99", "condition": "<= 0.15"}


@dataclass
class Stack:
    work: Path
    env: dict[str, str]
    registry: Path
    redis: Process
    servers: dict[str, Process]
    router_procs: list[Process]
    controllers: list[Process]
    rows: list[dict[str, Any]]
    exits: ExitStack = field(repr=False)

    @property
    def routers(self) -> list[str]:
        return [p.url or "" for p in self.router_procs]

    @property
    def controller(self) -> str:
        for proc in self.controllers:
            if proc.popen.poll() is None:
                return proc.url or ""
        raise AssertionError("no controller runs")

    def serve(self, name: str, *args: str, port: int | None = None) -> Process:
        """``sluice serve NAME ARGS`` on ``port`` (a free one by default), ready; stopped
        when the stack stops."""
        port = port or free_port()
        argv = [*sluice_command(), "serve", name, *args, "--port", str(port)]
        return self.exits.enter_context(running(
            argv, log=self.work / f"{name}-{port}-{time.monotonic_ns()}.log", env=self.env,
            ready_url=f"http://127.0.0.1:{port}/readyz",
        ))  # fmt: skip

    def start_server(self, version: str, port: int | None = None) -> Process:
        reg = ["--registry", str(self.registry), "--model", MODEL]
        return self.serve("model-server", *reg, "--version", version, port=port)

    def start_router(self, port: int | None = None) -> Process:
        return self.serve("router", "--registry", str(self.registry), port=port)

    def start_controller(self, port: int | None = None) -> Process:
        return self.serve("rollout-controller", port=port)

    def upstreams(self) -> dict[str, str]:
        return {v: p.url or "" for v, p in self.servers.items()}

    def put_route(self, **policy: Any) -> None:
        body = {"upstreams": self.upstreams(), "stable": "v1", **policy}
        resp = httpx.put(f"{self.routers[0]}/admin/v1/routes/{MODEL}", json=body, headers=ADMIN)
        assert resp.status_code == 200, resp.text

    def reset_route(self) -> None:
        self.put_route()

    def route(self, router: str | None = None) -> dict[str, Any]:
        url = router or self.routers[0]
        doc: dict[str, Any] = httpx.get(f"{url}/admin/v1/routes/{MODEL}", headers=ADMIN).json()
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
        resp = httpx.get(f"{self.controller}/admin/v1/rollouts/{name}", headers=ADMIN)
        assert resp.status_code == 200, resp.text
        st: dict[str, Any] = resp.json()["status"]
        return st

    def events(self, name: str = MODEL) -> list[dict[str, Any]]:
        resp = httpx.get(f"{self.controller}/admin/v1/rollouts/{name}/events", headers=ADMIN)
        assert resp.status_code == 200, resp.text
        found: list[dict[str, Any]] = resp.json()["events"]
        return found

    def steps_done(self, name: str = MODEL) -> list[str]:
        """``step N`` for every StepDone event, newest first."""
        return [e["message"].split(" done")[0] for e in self.events(name)
                if e["reason"] == "StepDone"]  # fmt: skip

    def wait_phase(self, *phases: str, timeout: float = 90.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if st["phase"] in phases:
                return st
            if time.monotonic() > deadline:
                raise AssertionError(f"phase {st['phase']} after {timeout}s, not {phases}: {st}")
            time.sleep(0.1)

    def wait_step(self, step: int, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if st["step"] == step and st["phase"] == "Progressing":
                return st
            if time.monotonic() > deadline:
                raise AssertionError(f"not at step {step} after {timeout}s: {st}")
            time.sleep(0.05)

    def finish(self, name: str = MODEL) -> None:
        httpx.delete(f"{self.controller}/admin/v1/rollouts/{name}", headers=ADMIN)
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


@contextmanager
def traffic(stack: Stack, workers: int = 3) -> Iterator[Counter[int]]:
    """User requests through both routers until the block ends; statuses counted (0: no
    answer at all, the router could not be reached)."""
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


def leader(stack: Stack) -> Process:
    for proc in stack.controllers:
        if proc.popen.poll() is None:
            text = httpx.get(f"{proc.url}/metrics").text
            if "sluice_rollout_leader 1.0" in text:
                return proc
    raise AssertionError("no controller leads")


def gauge(url: str, name: str, **labels: str) -> float | None:
    """A sample's value on ``url``/metrics, None when it is not shown."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for line in text.splitlines():
        m = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
            return float(m.group(2))
    return None


def port_of(proc: Process) -> int:
    return int((proc.url or "").rsplit(":", 1)[1])


@contextmanager
def rollout_stack(work: Path) -> Iterator[Stack]:
    table = generate_churn(1500, seed=5)
    registry = ModelRegistry(work / "registry")
    train_and_register(table, model=MODEL, version="v1", registry=registry, algorithm="logreg")
    same = generate_churn(1500, seed=6)  # another sample of the same world: a good candidate
    train_and_register(same, model=MODEL, version="v2", registry=registry, algorithm="logreg")
    flipped = table.assign(churned=1 - table["churned"])  # answers the opposite: disagrees
    train_and_register(flipped, model=MODEL, version="v3", registry=registry, algorithm="logreg")
    card = registry.card(MODEL, "v1")
    names = [f.name for f in card.features]
    rows = [{str(k): _plain(v) for k, v in r.items() if k in names or k == card.entity_key}
            for r in table.head(300).to_dict("records")]  # fmt: skip
    with ExitStack() as exits:
        # AOF fsynced on every write, so a test may kill Redis and start it again on the
        # same port and folder with nothing lost (the chart's AOF syncs every second).
        redis_port = free_port()
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        redis = exits.enter_context(redis_on(redis_port, work / "redis", *AOF))
        env = {
            **os.environ, "SLUICE_REDIS_URL": redis_url, "SLUICE_ADMIN_TOKEN": TOKEN,
            "SLUICE_ROUTER_FEATURE_LOOKUP": "off", "SLUICE_ROUTER_TALLY_FLUSH_SECONDS": "0.1",
            "SLUICE_ROLLOUT_TICK_SECONDS": "0.2", "SLUICE_ROLLOUT_LEASE_SECONDS": "2",
            "SLUICE_ROLLOUT_SETTLE_SECONDS": "0.3", "SLUICE_DRIFT_MONITOR_WINDOW_SIZE": "200",
            "SLUICE_DRIFT_MONITOR_MIN_WINDOW_SIZE": "100",
            "SLUICE_DRIFT_MONITOR_WINDOW_SECONDS": "3",
        }  # fmt: skip
        s = Stack(work, env, registry.root, redis, {}, [], [], rows, exits)
        s.servers.update({v: s.start_server(v) for v in ("v1", "v2", "v3")})
        s.router_procs.extend(s.start_router() for _ in range(2))
        drift = s.serve("drift-monitor", "--registry", str(registry.root))
        env["SLUICE_ROLLOUT_DRIFT_MONITOR_URL"] = drift.url or ""
        s.controllers.extend(s.start_controller() for _ in range(2))
        s.reset_route()
        yield s


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
