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
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sluice.core.registry import ModelRegistry
from sluice.feature_store.backends import RedisOnlineStore
from sluice.feature_store.definitions import load_repo
from sluice.feature_store.materialize import materialize
from sluice.trainer.data import generate_churn
from sluice.trainer.service import train_and_register
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
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "churn" / "features.yaml"


@dataclass
class Service:
    """One running service: its URL and the token its writes take."""

    url: str
    token: str
    log: Path

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
            out[name] = Service(proc.url or "", token, log)
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
        start("rollout-controller", ADMIN_TOKEN, "--redis-url", redis_url)
        yield out
