"""A registry trained once per session, a real Redis per test, the real monitor process."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluice.core.registry import ModelRegistry
from tests.integration.drift_monitor.traffic import Traffic, train
from tests.support.procs import Process, free_port, running, sluice_command

MODEL = "churn"

StartMonitor = Callable[..., AbstractContextManager[Process]]


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    """churn v1 and v2, trained by the trainer on generated data (v2: another seed)."""
    root = tmp_path_factory.mktemp("registry")
    train(root, MODEL, "v1", seed=1)
    return train(root, MODEL, "v2", seed=2)


@pytest.fixture
def traffic(registry: ModelRegistry, redis_url: str) -> Iterator[Traffic]:
    t = Traffic(registry, MODEL, "v1", redis_url)
    yield t
    t.close()


FEEDBACK_TOKEN = "feedback-secret"
FEEDBACK = {"authorization": f"Bearer {FEEDBACK_TOKEN}"}


@pytest.fixture
def start_monitor(registry: ModelRegistry, redis_url: str, tmp_path: Path) -> StartMonitor:
    """Start ``sluice serve drift-monitor`` on a random port; options as keyword arguments."""

    @contextmanager
    def start(log_name: str = "monitor.log", **options: Any) -> Iterator[Process]:
        port = free_port()
        argv = [*sluice_command(), "serve", "drift-monitor", "--redis-url", redis_url,
                "--registry", str(registry.root), "--port", str(port)]  # fmt: skip
        env = {
            "SLUICE_FEEDBACK_TOKEN": FEEDBACK_TOKEN,
            "SLUICE_DRIFT_MONITOR_DISCOVERY_SECONDS": "0.5",
            "SLUICE_DRIFT_MONITOR_LEASE_SECONDS": "3",
            "SLUICE_DRIFT_MONITOR_BLOCK_MS": "100",
            **{f"SLUICE_DRIFT_MONITOR_{k.upper()}": str(v) for k, v in options.items()},
        }
        with running(
            argv, log=tmp_path / log_name, env=env, ready_url=f"http://127.0.0.1:{port}/readyz"
        ) as proc:
            yield proc

    return start


def report(proc: Process) -> dict[str, Any]:
    response = httpx.get(f"{proc.url}/v1/drift/{MODEL}", timeout=10)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def wait_for(
    proc: Process, done: Callable[[dict[str, Any]], bool], timeout: float = 60
) -> dict[str, Any]:
    """Poll the drift report until ``done(report)``; fail with the last report and the log."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise AssertionError(f"monitor exited:\n{proc.output()[-4000:]}")
        body = report(proc)
        if done(body):
            return body
        time.sleep(0.2)
    raise AssertionError(f"timed out; last report: {str(body)[:3000]}\n{proc.output()[-3000:]}")


def rows_committed(body: dict[str, Any], version: str = "v1") -> int:
    entry = body["versions"].get(version)
    return int(entry["rows_committed"]) if entry else 0
