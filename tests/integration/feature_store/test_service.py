"""The feature store service against a real Redis: round trips over HTTP, Redis restarts."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest
import redis
from prometheus_client import CollectorRegistry

from sluice.feature_store.app import create_app
from sluice.feature_store.backends import RedisOnlineStore
from sluice.feature_store.definitions import load_repo
from sluice.feature_store.settings import Settings
from tests.integration.feature_store.conftest import definitions
from tests.support.asgi import AppClient
from tests.support.procs import free_port, redis_on, running, sluice_command

pytestmark = pytest.mark.integration


def seed(url: str, repo_file: Path, ids: list[str]) -> None:
    view = load_repo(repo_file).views[0]

    async def main() -> None:
        store = RedisOnlineStore.from_url(url)
        await store.save_views([view], [], [])
        now = int(time.time() * 1e6)
        await store.write(view, [(e, now, [i, i / 4]) for i, e in enumerate(ids)], kind="push")
        await store.aclose()

    asyncio.run(main())


def test_an_http_read_is_one_redis_round_trip(redis_url: str, tmp_path: Path) -> None:
    ids = [f"C{i:03d}" for i in range(100)]
    seed(redis_url, definitions(tmp_path / "f.yaml", tmp_path / "s.parquet"), ids)
    settings = Settings(redis_url=redis_url, registry_refresh_seconds=3600)
    raw = redis.Redis.from_url(redis_url)
    body = orjson.dumps({"features": ["activity:*"], "entities": {"customer_id": ids}})
    with AppClient(create_app(settings, registry=CollectorRegistry())) as client:
        assert client.post("/v1/features/get-online", content=body).status_code == 200
        for path in ("/v1/features/get-online", "/get-online-features"):
            raw.config_resetstat()
            response = client.post(path, content=body)
            stats = raw.info("commandstats")
            calls = {
                k: v["calls"]
                for k, v in stats.items()
                if k not in ("cmdstat_config", "cmdstat_info")
            }
            assert response.status_code == 200
            assert calls == {"cmdstat_mget": 1}, calls
        values = client.post("/v1/features/get-online", content=body).json()["results"][0]["values"]
        assert values == list(range(100))


def test_redis_restart_during_traffic_is_503_then_recovers(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    durable = ("--appendonly", "yes", "--appendfsync", "always")
    repo_file = definitions(tmp_path / "f.yaml", tmp_path / "s.parquet")
    service_port = free_port()
    argv = [*sluice_command(), "serve", "feature-store", "--port", str(service_port),
            "--redis-url", url]  # fmt: skip
    env = {"SLUICE_FEATURE_STORE_REGISTRY_REFRESH_SECONDS": "0.5"}
    body = orjson.dumps({"features": ["activity:calls"], "entities": {"customer_id": ["C1", "C2"]}})
    seen: Counter[int] = Counter()
    messages: list[str] = []
    stop = threading.Event()

    def traffic(base: str) -> None:
        with httpx.Client(base_url=base, timeout=5) as client:
            while not stop.is_set():
                response = client.post("/v1/features/get-online", content=body)
                seen[response.status_code] += 1
                if response.status_code == 503 and len(messages) < 3:
                    messages.append(response.json()["error"]["message"])
                time.sleep(0.005)

    with redis_on(port, tmp_path / "redis", *durable) as first:
        seed(url, repo_file, ["C1", "C2"])
        with running(argv, log=tmp_path / "service.log", env=env,
                     ready_url=f"http://127.0.0.1:{service_port}/readyz") as service:  # fmt: skip
            assert service.url is not None
            worker = threading.Thread(target=traffic, args=(service.url,))
            worker.start()
            try:
                wait_for(lambda: seen[200] >= 20)
                first.stop(sig=9)  # a crash, not a clean shutdown
                wait_for(lambda: seen[503] >= 5)
                ready = httpx.get(f"{service.url}/readyz")
                assert ready.status_code == 503 and "ConnectionError" in ready.json()["reason"]
                assert f":{port}" not in ready.text  # addresses stay in our log
                ok_before = seen[200]
                with redis_on(port, tmp_path / "redis", *durable):
                    wait_for(lambda: seen[200] >= ok_before + 20)
                    assert httpx.get(f"{service.url}/readyz").status_code == 200
                    after = httpx.post(f"{service.url}/v1/features/get-online", content=body)
                    assert after.json()["results"][0]["values"] == [0, 1]
            finally:
                stop.set()
                worker.join(10)
    assert set(seen) == {200, 503}, seen
    assert messages and "Redis did not answer (ConnectionError)" in messages[0]
    assert all(f":{port}" not in m for m in messages)
    assert f"Redis at redis://127.0.0.1:{port}/0 did not answer" in service.output()


def wait_for(condition: object, timeout: float = 20) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.02)
