"""The whole system as docs/deploy.md runs it: real Redis with a password, every service a
real process with its token.

A user generates data, applies and materialises feature views, trains from the feature
store, serves the version, routes to it, sends only entity ids through the router, and
reads drift and performance figures back from the drift monitor. Last, the one Redis that
holds the features, the routing table and the prediction log is frozen, then killed and
started again from its AOF, under load.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.load import Load
from tests.support.procs import Process, free_port, redis_on, running, sluice_command

pytestmark = pytest.mark.e2e

TOKEN = "e2e-admin-token"
FEEDBACK_TOKEN = "e2e-feedback-token"
REDIS_PASSWORD = "e2e-redis-password"
ROWS = 3000
AOF = ("--appendonly", "yes", "--appendfsync", "always")


@dataclass
class System:
    table: pd.DataFrame
    router: str
    model_server: str
    drift: str
    env: dict[str, str]
    redis: Process
    exits: ExitStack
    redis_port: int
    redis_dir: Path

    def start_redis(self) -> None:
        """Redis on its port again, from its AOF (after a test killed it)."""
        args = (*AOF, "--requirepass", REDIS_PASSWORD)
        self.redis = self.exits.enter_context(redis_on(self.redis_port, self.redis_dir, *args))


def sluice(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [*sluice_command(), *args], capture_output=True, text=True, timeout=180, env=env
    )
    assert done.returncode == 0, f"sluice {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    import os

    work = tmp_path_factory.mktemp("system")
    with ExitStack() as stack:
        port = free_port()
        redis = stack.enter_context(
            redis_on(port, work / "redis", *AOF, "--requirepass", REDIS_PASSWORD)
        )
        redis_url = f"redis://127.0.0.1:{port}/0"
        env = {
            **os.environ,
            "SLUICE_REDIS_URL": redis_url,  # no password in it: SLUICE_REDIS_PASSWORD
            "SLUICE_REDIS_PASSWORD": REDIS_PASSWORD,
            "SLUICE_ADMIN_TOKEN": TOKEN,
            "SLUICE_FEEDBACK_TOKEN": FEEDBACK_TOKEN,
        }
        data, registry = work / "churn.parquet", work / "registry"
        definitions = work / "features.yaml"
        example = (Path(__file__).parents[2] / "examples/churn/features.yaml").read_text()
        definitions.write_text(example.replace("../../.sluice/churn.parquet", str(data)))

        sluice("data", "generate", "--rows", str(ROWS), "--seed", "11", "--out", str(data), env=env)
        sluice("features", "apply", "-f", str(definitions), env=env)
        sluice("features", "materialize", "--incremental", env=env)
        sluice(
            "train", "--model", "churn", "--version", "v1", "--registry", str(registry),
            "--data", str(data), "--features", str(definitions), "--algorithm", "logreg", env=env,
        )  # fmt: skip

        def serve(name: str, *args: str) -> str:
            port = free_port()
            proc = stack.enter_context(
                running(
                    [*sluice_command(), "serve", name, *args, "--port", str(port)],
                    log=work / f"{name}.log",
                    ready_url=f"http://127.0.0.1:{port}/readyz",
                    env=env,
                )
            )
            assert proc.url is not None
            return proc.url

        model_server = serve(
            "model-server", "--registry", str(registry), "--model", "churn", "--version", "v1"
        )
        router = serve("router", "--registry", str(registry))
        drift = serve(
            "drift-monitor", "--registry", str(registry), "--window-size", "400",
            "--min-window-size", "300",
        )  # fmt: skip
        sluice(
            "route", "set", "churn", "--router-url", router,
            "--upstream", f"v1={model_server}", "--stable", "v1", env=env,
        )  # fmt: skip
        table = pd.read_parquet(data)
        yield System(table, router, model_server, drift, env, redis, stack, port, work / "redis")


def features_of(table: pd.DataFrame, customer: str) -> dict[str, Any]:
    row = table.loc[table["customer_id"] == customer].iloc[0]
    skip = {"customer_id", "event_timestamp", "churned"}
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items() if k not in skip}


def test_an_entity_id_alone_gets_the_prediction_of_its_full_feature_vector(system: System) -> None:
    customers = ["C000001", "C000042", "C002999"]
    through_router = httpx.post(
        f"{system.router}/v1/models/churn:predict",
        json={"instances": [{"customer_id": c} for c in customers]},
    )
    assert through_router.status_code == 200, through_router.text
    assert through_router.headers["x-sluice-version"] == "v1"
    direct = httpx.post(
        f"{system.model_server}/v1/models/churn:predict",
        json={"instances": [features_of(system.table, c) for c in customers]},
    )
    assert direct.status_code == 200, direct.text
    for got, want in zip(
        through_router.json()["predictions"], direct.json()["predictions"], strict=True
    ):
        assert got["label"] == want["label"]
        for cls, p in want["probabilities"].items():
            assert got["probabilities"][cls] == pytest.approx(p, abs=1e-9)


def test_an_unknown_entity_is_refused_naming_it(system: System) -> None:
    answer = httpx.post(
        f"{system.router}/v1/models/churn:predict",
        json={"instances": [{"customer_id": "NOPE-1"}]},
    )
    assert answer.status_code == 422
    assert "age" in answer.text
    assert "NOPE-1" in answer.text  # the entity the lookup did not find


def test_live_traffic_reaches_drift_and_performance_figures(system: System) -> None:
    table = system.table.sample(800, random_state=5)
    truth: dict[str, int] = {}
    with httpx.Client(base_url=system.router) as client:
        for start in range(0, len(table), 20):
            chunk = table.iloc[start : start + 20]
            answer = client.post(
                "/v1/models/churn:predict",
                json={"instances": [{"customer_id": c} for c in chunk["customer_id"]]},
            )
            assert answer.status_code == 200, answer.text
            rid = answer.headers["x-request-id"]
            for i, label in enumerate(chunk["churned"]):
                truth[f"{rid}/{i}"] = int(label)

    report = _wait_for_window(system.drift)
    latest = report["versions"]["v1"]["latest"]
    assert latest["rows"] >= 400
    assert latest["status"] in {"ok", "drift"}  # conclusive: a verdict, not "inconclusive"
    model_features = set(features_of(system.table, "C000001"))
    assert set(latest["features"]) == model_features
    for figures in latest["features"].values():
        assert "drifted" in figures

    ids = list(truth)
    feedback = httpx.post(
        f"{system.drift}/v1/feedback",
        json={"model": "churn", "ids": [*ids, "never-served"], "labels": [*truth.values(), 1]},
        headers={"authorization": f"Bearer {FEEDBACK_TOKEN}"},
    )
    assert feedback.status_code == 200, feedback.text
    counts = feedback.json()
    assert counts["joined"] == len(ids)
    assert counts["unknown"] == 1
    performance = httpx.get(f"{system.drift}/v1/drift/churn").json()["versions"]["v1"]
    assert performance["performance"]["accuracy"] > 0.6


def _wait_for_window(drift: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report: dict[str, Any] = httpx.get(f"{drift}/v1/drift/churn").json()
        if "v1" in report.get("versions", {}):
            return report
        time.sleep(0.2)
    raise AssertionError(f"no drift window closed within {timeout}s: {report}")


def test_redis_frozen_then_killed_under_load_each_policy_holds_and_all_heals(
    system: System,
) -> None:
    """Entity ids alone, one after another, while Redis is frozen (SIGSTOP), then killed
    and started again from its AOF. A model whose ``on_missing`` is ``default`` answers
    every request from the training defaults meanwhile; one that rejects answers 503
    ``feature_lookup_unavailable``. Both heal by themselves, and the prediction log goes on.
    """
    customers = [str(c) for c in system.table["customer_id"].iloc[:50]]
    route(system, "default")
    with Load(system.router, customers) as load:
        wait_for(lambda: load.answered() >= 20, "answers before")
        for fault in ("frozen", "killed"):
            gaps = unavailable(system)
            if fault == "frozen":
                system.redis.popen.send_signal(signal.SIGSTOP)
            else:
                system.redis.stop(signal.SIGKILL)
            wait_for(lambda g=gaps: unavailable(system) >= g + 5, f"defaults while {fault}")
            if fault == "frozen":
                system.redis.popen.send_signal(signal.SIGCONT)
            else:
                system.start_redis()
            written = logged(system)
            wait_for(lambda w=written: logged(system) >= w + 20, f"the log after {fault}")
            after = unavailable(system)
            answered = load.answered()
            wait_for(lambda a=answered: load.answered() >= a + 20, f"answers after {fault}")
            assert unavailable(system) == after  # features looked up again, none defaulted
    assert set(load.statuses) == {200}, load.report()
    test_an_entity_id_alone_gets_the_prediction_of_its_full_feature_vector(system)

    route(system, "reject")
    with Load(system.router, customers) as load:
        wait_for(lambda: load.answered() >= 20, "answers before")
        system.redis.popen.send_signal(signal.SIGSTOP)
        wait_for(lambda: load.statuses[503] >= 3, "503 while frozen")
        system.redis.popen.send_signal(signal.SIGCONT)
        mark = Counter(load.statuses)
        wait_for(lambda: load.since(mark)[200] >= 20, "answers after")
    assert set(load.statuses) == {200, 503}, load.report()
    assert all("feature_lookup_unavailable" in e for e in load.errors), load.report()


def route(system: System, on_missing: str) -> None:
    revision = metric(system.router, "sluice_router_table_revision", model="churn")
    sluice(
        "route", "set", "churn", "--router-url", system.router, "--on-missing", on_missing,
        "--upstream", f"v1={system.model_server}", "--stable", "v1", env=system.env,
    )  # fmt: skip
    table = "sluice_router_table_revision"
    wait_for(lambda: metric(system.router, table, model="churn") > revision, "the route")


def unavailable(system: System) -> float:
    """Values of ``age`` the router could not look up and took the training default of."""
    labels = {"feature": "age", "status": "UNAVAILABLE", "action": "default"}
    return metric(system.router, "sluice_router_feature_gaps_total", model="churn", **labels)


def logged(system: System) -> float:
    return metric(system.router, "sluice_router_predlog_records_total", model="churn")


def metric(url: str, name: str, **labels: str) -> float:
    """One sample of a /metrics scrape (0 when absent)."""
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def wait_for(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.05)
