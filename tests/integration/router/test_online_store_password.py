"""The online store on a Redis of its own, with its own password: the router reads it given
SLUICE_ROUTER_FEATURE_REDIS_PASSWORD, and keeps that password off the routing table's Redis
(which has none here: sending it there would fail every table read)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from sluice.core.settings import with_password
from tests.integration.router.conftest import EXAMPLES, MODEL, Stack, _load_features
from tests.support.procs import free_port, redis_server, running, sluice_command

PASSWORD = "online-store-pw"


def test_the_online_store_password_reaches_only_the_online_store(
    stack: Stack, tmp_path: Path
) -> None:
    source = tmp_path / "churn.parquet"
    stack.table.to_parquet(source)
    definitions = tmp_path / "features.yaml"
    definitions.write_text(EXAMPLES.read_text().replace("../../.sluice/churn.parquet", str(source)))
    stack.route()
    customers = stack.customers(3, offset=50)
    body = {"instances": [{"customer_id": c} for c in customers]}
    expected = httpx.post(f"{stack.router}/v1/models/{MODEL}:predict", json=body, timeout=10)
    assert expected.status_code == 200, expected.text
    with redis_server(tmp_path / "redis", "--requirepass", PASSWORD) as (url, _):
        asyncio.run(_load_features(with_password(url, PASSWORD), definitions))
        port = free_port()
        argv = [*sluice_command(), "serve", "router", "--redis-url", stack.redis_url,
                "--registry", str(stack.registry.root), "--port", str(port)]  # fmt: skip
        env = {"SLUICE_ROUTER_FEATURE_REDIS_URL": url}  # no password in the URL
        for given, status in [(None, 503), (PASSWORD, 200)]:
            if given:
                env["SLUICE_ROUTER_FEATURE_REDIS_PASSWORD"] = given
            with running(
                argv,
                log=tmp_path / f"router-{status}.log",
                env=env,
                ready_url=f"http://127.0.0.1:{port}/readyz",
            ) as router:
                got = httpx.post(f"{router.url}/v1/models/{MODEL}:predict", json=body, timeout=10)
            assert got.status_code == status, (given, got.text)
        assert got.json()["predictions"] == expected.json()["predictions"]
