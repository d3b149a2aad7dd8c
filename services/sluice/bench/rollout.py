"""How fast a declared rollout takes a bad candidate out of traffic.

Real processes on 127.0.0.1: Redis, model servers v1 (stable), v2 (good), v3 (answers the
opposite of v1), two routers, one rollout controller (default tick and settle), users
sending requests through both routers. Each round declares a canary at 1 s analysis
interval and measures, from the candidate's first bad answer to the route change that
took its weight to 0 (the route's own ``updated_at``): the seconds, the same in analysis
intervals (target: at most 2), and how many user requests the bad candidate answered in
between. Scenarios:

- ``dies``: v2 at 50 %, then its server is killed; the router answers from stable
  (fallback), so users see no error, but every fallback is the candidate's failure.
- ``disagrees``: v3 at 50 % with 100 % mirror; its answers disagree with stable's from
  the first one (``shadowAgreement >= 0.9``).

    python -m sluice.bench.rollout --rounds 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from sluice.bench._common import RESULTS, free_port, serving
from sluice.local.stack import redis_server_binary

TOKEN = "bench-token"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
SLUICE = [str(Path(sys.executable).with_name("sluice"))]
INTERVAL = 1.0


def rollout(candidate: str, metric: dict[str, Any], mirror: bool) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"setMirror": 100}] if mirror else []
    steps += [{"setWeight": 50}, {"pause": {"duration": "1h"}}]
    return {
        "apiVersion": "serving.sluice.dev/v1alpha1", "kind": "ModelRollout",
        "metadata": {"name": "churn"},
        "spec": {
            "model": "churn", "stable": "v1", "candidate": candidate,
            "strategy": {"canary": {"steps": steps}},
            "analysis": {"interval": f"{INTERVAL}s", "minSamples": 20, "failureLimit": 1,
                         "inconclusiveLimit": 100, "metrics": [metric]},
        },
    }  # fmt: skip


class Users:
    """Requests through both routers; when each version answered."""

    def __init__(self, routers: list[str], rows: list[dict[str, Any]], workers: int = 4) -> None:
        self.routers, self.rows = routers, rows
        self.answers: list[tuple[float, str, int]] = []
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._user, args=(i, workers)) for i in range(workers)
        ]

    def _user(self, i: int, step: int) -> None:
        with httpx.Client(timeout=10) as client:
            n = i
            while not self.stop.is_set():
                url = f"{self.routers[n % 2]}/v1/models/churn:predict"
                body = {"instances": [self.rows[n % len(self.rows)]]}
                try:
                    resp = client.post(url, json=body)
                    version = resp.headers.get("x-sluice-version", "")
                    self.answers.append((time.time(), version, resp.status_code))
                except httpx.HTTPError:
                    self.answers.append((time.time(), "", 0))
                n += step

    def __enter__(self) -> Users:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "rollout.md")
    args = parser.parse_args()
    from sluice.core.registry import ModelRegistry
    from sluice.trainer.data import generate_churn
    from sluice.trainer.service import train_and_register

    work = Path(tempfile.mkdtemp(prefix="bench-rollout-"))
    table = generate_churn(1500, seed=5)
    registry = ModelRegistry(work / "registry")
    print("training v1, v2, v3 ...", flush=True)
    train_and_register(table, model="churn", version="v1", registry=registry, algorithm="logreg")
    train_and_register(generate_churn(1500, seed=6), model="churn", version="v2",
                       registry=registry, algorithm="logreg")  # fmt: skip
    flipped = table.assign(churned=1 - table["churned"])
    train_and_register(flipped, model="churn", version="v3", registry=registry, algorithm="logreg")
    names = {f.name for f in registry.card("churn", "v1").features} | {"customer_id"}
    rows = [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items() if k in names}
            for r in table.head(300).to_dict("records")]  # fmt: skip
    redis_bin = redis_server_binary()
    results: dict[str, list[tuple[float, int]]] = {"dies": [], "disagrees": []}
    load_before = os.getloadavg()
    with ExitStack() as stack:
        rport = free_port()
        argv = [redis_bin, "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                "--dir", str(work)]  # fmt: skip
        redis = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        stack.callback(redis.terminate)
        time.sleep(0.5)
        env = {"SLUICE_REDIS_URL": f"redis://127.0.0.1:{rport}/0", "SLUICE_ADMIN_TOKEN": TOKEN,
               "SLUICE_ROUTER_FEATURE_LOOKUP": "off"}  # fmt: skip

        def serve(*argv: str) -> tuple[str, int]:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            cmd = [*SLUICE, "serve", *argv, "--port", str(port)]
            log = work / f"{argv[0]}-{port}.log"
            return stack.enter_context(serving(cmd, url, "/readyz", env, log))

        def model_server(version: str) -> tuple[str, int]:
            return serve("model-server", "--registry", str(registry.root), "--model", "churn",
                         "--version", version)  # fmt: skip

        servers = {v: model_server(v) for v in ("v1", "v2", "v3")}
        routers = [serve("router", "--registry", str(registry.root))[0] for _ in range(2)]
        controller = serve("rollout-controller")[0]
        for r in range(args.rounds):
            for scenario in ("dies", "disagrees"):
                ups = {v: url for v, (url, _) in servers.items()}
                put = httpx.put(f"{routers[0]}/admin/v1/routes/churn", headers=ADMIN,
                                json={"upstreams": ups, "stable": "v1"})  # fmt: skip
                put.raise_for_status()
                if scenario == "dies":
                    doc = rollout("v2", {"name": "success", "builtin": "successRate",
                                         "condition": ">= 0.95"}, mirror=False)  # fmt: skip
                else:
                    doc = rollout("v3", {"name": "agreement", "builtin": "shadowAgreement",
                                         "condition": ">= 0.9"}, mirror=True)  # fmt: skip
                with Users(routers, rows) as users:
                    time.sleep(1.0)
                    resp = httpx.put(f"{controller}/admin/v1/rollouts/churn", json=doc,
                                     headers=ADMIN)  # fmt: skip
                    resp.raise_for_status()
                    bad_at = None
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline:
                        route = httpx.get(
                            f"{routers[0]}/admin/v1/routes/churn", headers=ADMIN
                        ).json()
                        if scenario == "dies" and bad_at is None and route["weight"] == 50:
                            time.sleep(3 * INTERVAL)  # let a few checks pass first
                            bad_at = time.time()
                            os.kill(servers["v2"][1], signal.SIGKILL)
                        status = httpx.get(f"{controller}/admin/v1/rollouts/churn",
                                           headers=ADMIN).json()["status"]  # fmt: skip
                        if status["phase"] in ("Aborted", "Promoted"):
                            break
                        time.sleep(0.05)
                route = httpx.get(f"{routers[0]}/admin/v1/routes/churn", headers=ADMIN).json()
                if status["phase"] != "Aborted" or route["candidate"] is not None:
                    raise SystemExit(f"round {r} {scenario}: not rolled back: {status}")
                zero_at = route["updated_at"]
                if scenario == "disagrees":
                    bad_at = min(t for t, v, _ in users.answers if v == "v3")
                assert bad_at is not None
                bad = doc["spec"]["candidate"]
                answered = sum(
                    1 for t, v, _ in users.answers if v == bad and bad_at <= t <= zero_at
                )
                results[scenario].append((zero_at - bad_at, answered))
                print(f"round {r} {scenario}: {zero_at - bad_at:.2f} s, "
                      f"{answered} answers by the bad candidate", flush=True)  # fmt: skip
                httpx.delete(f"{controller}/admin/v1/rollouts/churn", headers=ADMIN)
                if scenario == "dies":
                    servers["v2"] = model_server("v2")  # the killed one, started again
    write(args, results, load_before, os.getloadavg())


def write(args: argparse.Namespace, results: dict[str, list[tuple[float, int]]],
          before: tuple[float, ...], after: tuple[float, ...]) -> None:  # fmt: skip
    lines = [
        "# Rollout benchmark: time to take a bad candidate out of traffic", "",
        f"- date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
        f"- machine: `nproc` = {os.cpu_count()}, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}",
        f"- load average before / after: {', '.join(f'{x:.2f}' for x in before)} / "
        f"{', '.join(f'{x:.2f}' for x in after)} (shared cores)",
        f"- command: `python -m sluice.bench.rollout --rounds {args.rounds}`; analysis interval "
        f"{INTERVAL:g} s, failureLimit 1, minSamples 20; controller tick 0.25 s, settle 0.5 s; "
        "routers flush tallies every 0.2 s; 4 users through 2 routers",
        "- from: the candidate's first bad answer (`dies`: the kill; `disagrees`: its first "
        "answer); to: the route's `updated_at` of the change that took it to weight 0",
        "",
        "| scenario | rounds | median s | max s | median intervals | bad answers median | max |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]  # fmt: skip
    for scenario, rows in results.items():
        secs = [s for s, _ in rows]
        bad = [n for _, n in rows]
        median = statistics.median(secs)
        lines.append(
            f"| {scenario} | {len(rows)} | {median:.2f} | {max(secs):.2f} | "
            f"{median / INTERVAL:.1f} | {statistics.median(bad):.0f} | {max(bad)} |"
        )
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
