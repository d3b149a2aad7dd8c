"""Every service as a real process on a real Redis, with a trained model and materialised
features, for schemathesis to fuzz through its own OpenAPI document.

Write and admin endpoints need Bearer tokens (SLUICE_ADMIN_TOKEN, SLUICE_FEATURE_WRITE_TOKEN,
SLUICE_FEEDBACK_TOKEN): every service gets all three, and the fuzzer sends the one its
service's writes take, so the writes are exercised, not only refused.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml

from sluice.core.registry import ModelRegistry
from sluice.feature_store.backends import RedisOnlineStore
from sluice.feature_store.definitions import load_repo
from sluice.feature_store.materialize import materialize
from sluice.trainer.data import generate_churn
from sluice.trainer.service import train_and_register
from tests.integration.model_server.conftest import v2_inputs
from tests.support.procs import free_port, redis_server, running, sluice_command

MODEL, VERSION = "churn", "v1"
ADMIN_TOKEN = "fuzz-admin"
FEATURE_WRITE_TOKEN = "fuzz-feature-writer"
FEEDBACK_TOKEN = "fuzz-feedback"
TOKENS = {
    "SLUICE_ADMIN_TOKEN": ADMIN_TOKEN,
    "SLUICE_FEATURE_WRITE_TOKEN": FEATURE_WRITE_TOKEN,
    "SLUICE_FEEDBACK_TOKEN": FEEDBACK_TOKEN,
}
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "churn" / "features.yaml"
ROLLOUT_DOC = ROOT / "docs" / "rollouts.md"


@dataclass(frozen=True)
class Call:
    """A request that must succeed (2xx): it takes the fuzzer past validation into the
    service, and its answer is checked against the document like every other."""

    method: str
    path: str
    body: Any = None


@dataclass
class Service:
    """One running service: its URL, the token its writes take, its known-good calls."""

    url: str
    token: str
    log: Path
    pid: int
    calls: list[Call] = field(default_factory=list)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


async def _load_features(url: str, definitions: Path) -> None:
    store = RedisOnlineStore.from_url(url)
    try:
        repo = load_repo(definitions)
        await store.refresh()
        await store.save_views(list(repo.views), [], [])
        await materialize(store, list(repo.views), start=0.0, end=time.time())
    finally:
        await store.aclose()


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Service]]:
    """feature-store, model-server, router, drift-monitor, rollout-controller, started once."""
    root = tmp_path_factory.mktemp("fuzz")
    table = generate_churn(500, seed=7)
    registry = ModelRegistry(root / "registry")
    train_and_register(table, model=MODEL, version=VERSION, registry=registry, algorithm="logreg")
    source = root / "churn.parquet"
    table.to_parquet(source)
    definitions = root / "features.yaml"
    definitions.write_text(EXAMPLES.read_text().replace("../../.sluice/churn.parquet", str(source)))
    with ExitStack() as stack:
        redis_url, _ = stack.enter_context(redis_server(root / "redis"))
        asyncio.run(_load_features(redis_url, definitions))
        out: dict[str, Service] = {}

        def start(name: str, token: str, *options: str) -> str:
            port = free_port()
            argv = [*sluice_command(), "serve", name, *options, "--port", str(port)]
            log = root / f"{name}.log"
            proc = stack.enter_context(
                running(argv, log=log, env=TOKENS, ready_url=f"http://127.0.0.1:{port}/readyz")
            )
            out[name] = Service(proc.url or "", token, log, proc.popen.pid)
            return out[name].url

        registry_opt = ("--registry", str(registry.root))
        start("feature-store", FEATURE_WRITE_TOKEN, "--redis-url", redis_url)
        model_server = start(
            "model-server", ADMIN_TOKEN, *registry_opt, "--model", MODEL, "--version", VERSION
        )
        router = start("router", ADMIN_TOKEN, "--redis-url", redis_url, *registry_opt)
        route = {"upstreams": {VERSION: model_server}, "stable": VERSION}
        auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        put = httpx.put(f"{router}/admin/v1/routes/{MODEL}", json=route, headers=auth, timeout=10)
        assert put.status_code == 200, put.text
        start("drift-monitor", FEEDBACK_TOKEN, "--redis-url", redis_url, *registry_opt)
        # its own Redis: a declared rollout steers the routing table, not the router's here
        rollout_redis, _ = stack.enter_context(redis_server(root / "redis-rollout"))
        start("rollout-controller", ADMIN_TOKEN, "--redis-url", rollout_redis)
        for name, calls in good_calls(table).items():
            out[name].calls = calls
        yield out


def good_calls(table: pd.DataFrame) -> dict[str, list[Call]]:
    """Per service, requests built from the served data that must succeed."""
    row = table.iloc[:2]
    key = str(row["customer_id"].iloc[0])
    features = row.drop(columns=["customer_id", "event_timestamp", "churned"])
    inputs = {"inputs": v2_inputs(features)}
    instances = {"instances": features.to_dict(orient="records")}
    activity = ["monthly_charges", "total_charges", "support_calls", "data_usage_gb"]
    activity += ["days_since_last_login"]
    stamp = "2026-11-01T00:00:00+00:00"
    values = {name: row[name].iloc[0].item() for name in activity}  # each column its dtype
    push_rows = [{"customer_id": key, **values, "event_timestamp": stamp}]
    frame = {c: [v] for c, v in push_rows[0].items()}
    online = {
        "features": ["customer_profile:age", "customer_activity:*"],
        "entities": {"customer_id": [key, "nobody"]},
    }
    infer = [
        Call("POST", f"/v2/models/{MODEL}/infer", inputs),
        Call("POST", f"/v2/models/{MODEL}/versions/{VERSION}/infer", inputs),
        Call("POST", f"/v1/models/{MODEL}:predict", instances),
    ]
    return {
        "feature-store": [
            Call("POST", "/v1/features/get-online", online),
            Call("POST", "/get-online-features", online),
            Call("POST", "/v1/features/push", {"view": "customer_activity", "rows": push_rows}),
            Call("POST", "/push", {"push_source_name": "customer_activity", "df": frame}),
            Call(
                "POST",
                "/write-to-online-store",
                {"feature_view_name": "customer_activity", "df": frame},
            ),
        ],
        "model-server": infer,
        "router": infer,
        "drift-monitor": [
            Call("POST", "/v1/feedback", {"model": MODEL, "ids": ["nobody"], "labels": [1]}),
        ],
        "rollout-controller": [
            Call("PUT", f"/admin/v1/rollouts/{MODEL}", rollout_example()),
            Call("GET", f"/admin/v1/rollouts/{MODEL}"),
            Call("GET", f"/admin/v1/rollouts/{MODEL}/events"),
            Call("POST", f"/admin/v1/rollouts/{MODEL}/actions", {"action": "abort"}),
        ],
    }


def rollout_example() -> Any:
    """The first ModelRollout of docs/rollouts.md."""
    block = ROLLOUT_DOC.read_text().split("```yaml\n", 1)[1].split("```", 1)[0]
    return yaml.safe_load(block)
