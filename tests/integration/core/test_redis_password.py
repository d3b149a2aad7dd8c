"""Every Redis-backed service reaches a Redis that requires a password, given
SLUICE_REDIS_PASSWORD beside a URL that carries none; without it, it says it is not ready."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx

from tests.integration.feature_store.conftest import definitions, write_source
from tests.support.procs import free_port, redis_server, running, sluice_command
from tests.unit.drift_monitor.conftest import register

PASSWORD = "redis-s3cret/+"
ADMIN = "admin-secret"


def test_every_service_uses_the_redis_password(tmp_path: Path) -> None:
    registry = register(tmp_path / "registry")
    repo = definitions(
        tmp_path / "f.yaml", write_source(tmp_path / "s.parquet", [("C1", 1, 2, 0.5)])
    )
    commands = {
        "router": ["router", "--registry", str(registry.root)],
        "rollout": ["rollout-controller"],
        "feature_store": ["feature-store"],
        "drift_monitor": ["drift-monitor", "--registry", str(registry.root)],
    }
    with ExitStack() as stack:
        url, _ = stack.enter_context(redis_server(tmp_path / "redis", "--requirepass", PASSWORD))
        env = {"SLUICE_REDIS_URL": url, "SLUICE_REDIS_PASSWORD": PASSWORD,
               "SLUICE_ADMIN_TOKEN": ADMIN}  # fmt: skip
        applied = subprocess.run([*sluice_command(), "features", "apply", "-f", str(repo)],
                                 env={**os.environ, **env}, capture_output=True,
                                 text=True)  # fmt: skip
        assert applied.returncode == 0, applied.stderr
        for name, command in commands.items():
            port = free_port()
            argv = [*sluice_command(), "serve", *command, "--port", str(port)]
            stack.enter_context(
                running(
                    argv,
                    log=tmp_path / f"{name}.log",
                    env=env,
                    ready_url=f"http://127.0.0.1:{port}/readyz",
                )
            )
            if name == "router":
                router = f"http://127.0.0.1:{port}"
            if name == "feature_store":
                store = f"http://127.0.0.1:{port}"
        route = {"upstreams": {"v1": "http://127.0.0.1:9"}, "stable": "v1"}
        put = httpx.put(f"{router}/admin/v1/routes/churn", json=route,
                        headers={"authorization": f"Bearer {ADMIN}"})  # fmt: skip
        assert put.status_code == 200, put.text
        views = httpx.get(f"{store}/v1/features/views").json()["views"]
        assert [v["name"] for v in views] == ["activity"]

        port = free_port()
        argv = [*sluice_command(), "serve", "feature-store", "--port", str(port)]
        without = {"SLUICE_REDIS_URL": url}
        with running(argv, log=tmp_path / "nopassword.log", env=without) as proc:
            reason = not_ready_reason(f"http://127.0.0.1:{port}/readyz", proc.output)
        assert "auth" in reason.lower(), reason


def not_ready_reason(url: str, output: Callable[[], str], timeout: float = 60) -> str:
    """The reason /readyz gives once it answers 503 naming Redis's refusal."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        assert answer.status_code == 503, answer.text
        last = answer.text
        if "auth" in last.lower():
            return last
        time.sleep(0.1)
    raise AssertionError(f"/readyz never named the refused password: {last}\n{output()}")
