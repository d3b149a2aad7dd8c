"""The Grafana dashboards: generated from code, and every query answered by real services.

Redis, the feature store, two model servers, the router, the drift monitor and the rollout
controller run as real processes; a real Prometheus scrapes them with the chart's scrape
settings (path and port from the pods' prometheus.io annotations, the `component` label
the ServiceMonitor sets). Traffic drives a shadow phase, a canary whose candidate fails
for a while (errors and fallbacks), a declared rollout the controller judges and a person
aborts, and drifted rows. Then every panel query must return data and every alert
expression must name only series that exist: a panel whose query names a metric nobody
exports fails the build.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml

from tests.chart.conftest import CHART, ROOT, Render, run
from tests.support.procs import free_port, redis_server, running, sluice_command

TOKEN = "dashboards-admin-token"
GENERATOR = CHART / "dashboards" / "generate.py"


def load_generator() -> Any:
    spec = importlib.util.spec_from_file_location("sluice_dashboards", GENERATOR)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_dashboards_are_the_current_output_of_the_generator(tmp_path: Path) -> None:
    run([str(ROOT / ".venv" / "bin" / "python"), str(GENERATOR), str(tmp_path)])
    fresh = {p.name: p.read_text() for p in tmp_path.glob("*.json")}
    committed = {p.name: p.read_text() for p in (CHART / "dashboards").glob("*.json")}
    assert committed == fresh, "dashboards are stale: run `make dashboards` and commit them"
    assert len(fresh) == 6


def sluice(*args: str, env: dict[str, str]) -> None:
    done = subprocess.run(
        [*sluice_command(), *args], capture_output=True, text=True, timeout=180, env=env
    )
    assert done.returncode == 0, f"sluice {' '.join(args)}:\n{done.stdout}{done.stderr}"


def scrape_settings(render: Render) -> tuple[str, dict[str, str]]:
    """The chart's metrics path, and each component's scrape port (the same for all)."""
    annotations = {
        o["metadata"]["labels"]["app.kubernetes.io/component"]: o["spec"]["template"]["metadata"][
            "annotations"
        ]
        for o in render()
        if o["kind"] == "Deployment"
    }
    paths = {a["prometheus.io/path"] for a in annotations.values()}
    assert len(paths) == 1
    return paths.pop(), {c: a["prometheus.io/port"] for c, a in annotations.items()}


@pytest.fixture(scope="module")
def prometheus(
    render: Render, promtool: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real Prometheus that scraped the real services through a shadow, canary and drift."""
    work = tmp_path_factory.mktemp("dashboards")
    path, _ = scrape_settings(render)
    with ExitStack() as stack:
        redis_url, _ = stack.enter_context(redis_server(work / "redis"))
        env = {**os.environ, "SLUICE_REDIS_URL": redis_url, "SLUICE_ADMIN_TOKEN": TOKEN}
        data, registry = work / "churn.parquet", work / "registry"
        definitions = work / "features.yaml"
        example = (ROOT / "examples" / "churn" / "features.yaml").read_text()
        definitions.write_text(example.replace("../../.sluice/churn.parquet", str(data)))
        sluice("data", "generate", "--rows", "2000", "--seed", "3", "--out", str(data), env=env)
        sluice("features", "apply", "-f", str(definitions), env=env)
        sluice("features", "materialize", "--incremental", env=env)
        for version, algorithm in (("v1", "logreg"), ("v2", "rf")):
            sluice(
                "train", "--model", "churn", "--version", version, "--registry", str(registry),
                "--data", str(data), "--features", str(definitions), "--algorithm", algorithm,
                env=env,
            )  # fmt: skip
        targets: dict[str, list[str]] = {}

        def serve(component: str, *args: str, **extra: str) -> str:
            port = free_port()
            proc = stack.enter_context(
                running(
                    [*sluice_command(), "serve", component, *args, "--port", str(port)],
                    log=work / f"{component}-{port}.log",
                    ready_url=f"http://127.0.0.1:{port}/readyz",
                    env={**env, **extra},
                )
            )
            targets.setdefault(component, []).append(f"127.0.0.1:{port}")
            assert proc.url is not None
            return proc.url

        feature_store = serve("feature-store")
        v1 = serve("model-server", "--registry", str(registry), "--model", "churn",
                   "--version", "v1")  # fmt: skip
        v2 = serve("model-server", "--registry", str(registry), "--model", "churn",
                   "--version", "v2")  # fmt: skip
        router = serve(
            "router", "--registry", str(registry), SLUICE_ROUTER_FEATURE_LOOKUP="http",
            SLUICE_ROUTER_FEATURE_STORE_URL=feature_store,
        )  # fmt: skip
        drift = serve(
            "drift-monitor", "--registry", str(registry), "--window-size", "300",
            "--min-window-size", "200",
        )  # fmt: skip
        controller = serve("rollout-controller", SLUICE_ROLLOUT_TICK_SECONDS="0.2")

        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": f"sluice-{component}",
                    "metrics_path": path,
                    "static_configs": [{"targets": hosts, "labels": {"component": component}}],
                }
                for component, hosts in targets.items()
            ],
        }
        (work / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        stack.enter_context(
            running(
                [
                    "prometheus", f"--config.file={work / 'prometheus.yml'}",
                    f"--storage.tsdb.path={work / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                log=work / "prometheus.log", ready_url=f"{url}/-/ready",
            )
        )  # fmt: skip

        table = pd.read_parquet(data)
        drifted = work / "drifted.parquet"
        sluice(
            "data", "generate", "--rows", "600", "--seed", "4", "--out", str(drifted),
            "--shift-feature", "monthly_charges", "--shift-amount", "3", env=env,
        )  # fmt: skip
        dead = f"http://127.0.0.1:{free_port()}"

        def route(*args: str) -> None:
            sluice(
                "route", "set", "churn", "--router-url", router, "--stable", "v1", *args, env=env
            )

        def send(customers: list[str], times: int = 1) -> None:
            with httpx.Client(base_url=router, timeout=10) as client:
                for _ in range(times):
                    for start in range(0, len(customers), 20):
                        chunk = customers[start : start + 20]
                        client.post(
                            "/v1/models/churn:predict",
                            json={"instances": [{"customer_id": c} for c in chunk]},
                        )

        ids = list(table["customer_id"])
        route("--upstream", f"v1={v1}", "--upstream", f"v2={v2}", "--candidate", "v2",
              "--mode", "shadow", "--mirror-percent", "100")  # fmt: skip
        send(ids[:600])
        # the candidate down: its calls fail and fall back to stable
        route("--upstream", f"v1={v1}", "--upstream", f"v2={dead}", "--candidate", "v2",
              "--mode", "canary", "--weight", "50")  # fmt: skip
        send(ids[600:800])
        route("--upstream", f"v1={v1}", "--upstream", f"v2={v2}", "--candidate", "v2",
              "--mode", "canary", "--weight", "50")  # fmt: skip
        send(ids[800:1400])
        # a declared rollout: checks judged (figures, verdicts, phase), then aborted by hand
        route("--upstream", f"v1={v1}", "--upstream", f"v2={v2}")
        rollout = work / "rollout.yaml"
        rollout.write_text(yaml.safe_dump({
            "apiVersion": "serving.sluice.dev/v1alpha1", "kind": "ModelRollout",
            "metadata": {"name": "churn"},
            "spec": {"model": "churn", "stable": "v1", "candidate": "v2",
                     "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}},
                     "analysis": {"interval": "1s", "minSamples": 5, "metrics": [
                         {"name": "success", "builtin": "successRate", "condition": ">= 0.5"}]}},
        }))  # fmt: skip
        sluice("rollout", "apply", "-f", str(rollout), "--controller-url", controller, env=env)
        admin = {"authorization": f"Bearer {TOKEN}"}
        deadline = time.monotonic() + 60
        while True:  # traffic until the controller judged a few checks
            send(ids[:100])
            doc = httpx.get(f"{controller}/admin/v1/rollouts/churn", headers=admin).json()
            if doc["status"].get("checks", 0) >= 3:
                break
            assert time.monotonic() < deadline, doc["status"]
        sluice("rollout", "abort", "churn", "--controller-url", controller, env=env)
        route("--upstream", f"v1={v1}", "--upstream", f"v2={v2}", "--candidate", "v2",
              "--mode", "canary", "--weight", "50")  # fmt: skip
        # drift: the shifted customers' features pushed online, then asked for
        shifted = pd.read_parquet(drifted)
        shifted["customer_id"] = [f"D{i:06d}" for i in range(len(shifted))]
        shifted.to_parquet(drifted)
        drifted_views = work / "drifted.yaml"
        drifted_views.write_text(example.replace("../../.sluice/churn.parquet", str(drifted)))
        sluice("features", "apply", "-f", str(drifted_views), env=env)
        sluice("features", "materialize", "--start", "2000-01-01T00:00:00Z", "--end", "now",
               env=env)  # fmt: skip
        send(list(shifted["customer_id"]))
        wait_for(drift, url)
        yield url


def wait_for(drift: str, prometheus: str, timeout: float = 90) -> None:
    """Until the drift monitor closed a window for both versions and Prometheus scraped it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = query(prometheus, "count(sluice_drift_monitor_feature_statistic)")
        if answer and float(answer[0]["value"][1]) > 0:
            time.sleep(3)  # a few more scrapes for rates
            return
        time.sleep(1)
    report = httpx.get(f"{drift}/v1/drift/churn").text
    raise AssertionError(f"no drift figures reached Prometheus in {timeout}s: {report[:2000]}")


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    assert answer.status_code == 200, f"{expr}: {answer.text}"
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def concrete(expr: str) -> str:
    return expr.replace("$__rate_interval", "1m")


def test_every_panel_query_returns_data(prometheus: str) -> None:
    empty = []
    for uid, exprs in load_generator().queries().items():
        for expr in exprs:
            if not query(prometheus, concrete(expr)):
                empty.append(f"{uid}: {expr}")
    assert not empty, "panels with no data:\n" + "\n".join(empty)


def test_every_alert_names_only_series_that_exist(prometheus: str) -> None:
    names = set(httpx.get(f"{prometheus}/api/v1/label/__name__/values", timeout=10).json()["data"])
    groups = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())["groups"]
    missing = []
    for rule in (r for g in groups for r in g["rules"]):
        query(prometheus, rule["expr"])  # evaluates without an error
        for metric in re.findall(r"\b((?:sluice|up|http)_?[a-z_]*)\b(?=\s*[{\[)])", rule["expr"]):
            if metric not in names:
                missing.append(f"{rule['alert']}: {metric}")
    assert not missing, missing
