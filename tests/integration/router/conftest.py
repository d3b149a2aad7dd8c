"""The real thing, once per session: Redis, two trained versions served by two model
server processes, the churn features materialised by the feature store, and two router
replicas in front (`sluice serve router`), every one on a random 127.0.0.1 port."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sluice.core.registry import ModelRegistry
from sluice.feature_store.backends import RedisOnlineStore
from sluice.feature_store.definitions import load_repo
from sluice.feature_store.materialize import materialize
from sluice.trainer.data import generate_churn
from sluice.trainer.service import train_and_register
from tests.support.procs import Process, free_port, redis_server, running, sluice_command

MODEL = "churn"
TOKEN = "integration-token"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "churn" / "features.yaml"


@dataclass
class Stack:
    redis_url: str
    registry: ModelRegistry
    table: pd.DataFrame
    """The churn table the features were materialised from (one row per customer)."""
    features: list[str]
    servers: dict[str, str]
    """version -> model server URL."""
    router: str
    replica: str
    """A second router on the same Redis."""
    start_server: Callable[[str], AbstractContextManager[Process]]
    redis: Process

    def route(self, url: str | None = None, **policy: Any) -> dict[str, Any]:
        body = {"upstreams": self.servers, "stable": "v1", **policy}
        resp = httpx.put(
            f"{url or self.router}/admin/v1/routes/{MODEL}", json=body, headers=ADMIN, timeout=10
        )
        assert resp.status_code == 200, resp.text
        doc: dict[str, Any] = resp.json()
        return doc

    def row(self, customer: str) -> dict[str, Any]:
        """The feature values the feature store holds for ``customer``."""
        found = self.table[self.table["customer_id"] == customer].iloc[0]
        return {f: _plain(found[f]) for f in self.features}

    def customers(self, n: int, offset: int = 0) -> list[str]:
        return [str(c) for c in self.table["customer_id"].iloc[offset : offset + n]]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def metrics(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """A /metrics scrape as {(name, {(label, value), ...}): value}."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def metric(url: str, name: str, **labels: str) -> float:
    return metrics(url).get((name, frozenset(labels.items())), 0.0)


def wait_for(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> float:
    """Poll ``check`` until it holds; the seconds it took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what} did not happen within {timeout}s")
        time.sleep(0.02)
    return time.monotonic() - started


async def _load_features(url: str, definitions: Path, *, cluster: bool = False) -> None:
    store = RedisOnlineStore.from_url(url, cluster=cluster)
    try:
        repo = load_repo(definitions)
        await store.refresh()
        await store.save_views(list(repo.views), [], [])
        await materialize(store, list(repo.views), start=0.0, end=time.time())
    finally:
        await store.aclose()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("router-stack")
    table = generate_churn(2000, seed=7)
    registry = ModelRegistry(root / "registry")
    card = train_and_register(
        table, model=MODEL, version="v1", registry=registry, algorithm="logreg"
    )
    train_and_register(table, model=MODEL, version="v2", registry=registry, algorithm="hgb")
    features = [f.name for f in card.features]
    source = root / "churn.parquet"
    table.to_parquet(source)
    definitions = root / "features.yaml"
    definitions.write_text(EXAMPLES.read_text().replace("../../.sluice/churn.parquet", str(source)))
    with ExitStack() as stack_:
        redis_url, redis = stack_.enter_context(redis_server(root / "redis"))
        asyncio.run(_load_features(redis_url, definitions))

        @contextmanager
        def start_server(version: str) -> Iterator[Process]:
            port = free_port()
            argv = [
                *sluice_command(),
                "serve",
                "model-server",
                "--registry",
                str(registry.root),
                "--model",
                MODEL,
                "--version",
                version,
                "--port",
                str(port),
            ]
            log = root / f"model-server-{version}-{port}.log"
            with running(argv, log=log, ready_url=f"http://127.0.0.1:{port}/readyz") as proc:
                yield proc

        servers = {v: stack_.enter_context(start_server(v)).url or "" for v in ("v1", "v2")}
        routers = []
        for _ in range(2):
            port = free_port()
            argv = [
                *sluice_command(),
                "serve",
                "router",
                "--redis-url",
                redis_url,
                "--registry",
                str(registry.root),
                "--port",
                str(port),
            ]
            proc = stack_.enter_context(
                running(
                    argv,
                    log=root / f"router-{port}.log",
                    env={"SLUICE_ADMIN_TOKEN": TOKEN},
                    ready_url=f"http://127.0.0.1:{port}/readyz",
                )
            )
            routers.append(proc.url or "")
        yield Stack(
            redis_url,
            registry,
            table,
            features,
            servers,
            routers[0],
            routers[1],
            start_server,
            redis,
        )
