"""Every write and admin endpoint against the real services: tokens, and huge bodies.

The router, the rollout controller, the feature store and the drift monitor run as real
``sluice serve`` processes on one real Redis, each with its role's token. A huge upload
(50 MiB, streamed with no Content-Length, or declared up front) must be refused, 401
without a token or 413 with one, without the process's peak memory (VmHWM of the real
uvicorn process) growing anywhere near the upload's size.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluice.router.backends import HttpFeatureLookup, UpstreamFailure
from sluice.router.http1 import Http1Upstream
from tests.integration.feature_store.conftest import definitions, write_source
from tests.integration.rollout.test_api import example
from tests.support.procs import Process, free_port, redis_server, running, sluice_command
from tests.unit.drift_monitor.conftest import register

ADMIN, WRITER, FEEDBACK, READER = "admin-secret", "writer-secret", "feedback-secret", "reader-s"
ENV = {  # every role mid-rotation: the new token first, the old one still accepted
    "SLUICE_ADMIN_TOKEN": f"{ADMIN}, {ADMIN}-old",
    "SLUICE_FEATURE_WRITE_TOKEN": f"{WRITER},{WRITER}-old",
    "SLUICE_FEEDBACK_TOKEN": f"{FEEDBACK},{FEEDBACK}-old",
    "SLUICE_FEATURE_READ_TOKEN": f"{READER},{READER}-old",
}
HUGE = 50 * 1024 * 1024
CHUNK = 256 * 1024
MIB = 1024 * 1024


@dataclass(frozen=True)
class Endpoint:
    """A protected endpoint: which service, which call, whose token, a body it accepts."""

    service: str
    method: str
    path: str
    token: str
    body: Any

    def __str__(self) -> str:
        return f"{self.service} {self.method} {self.path}"


ROUTE = {"upstreams": {"v1": "http://127.0.0.1:9"}, "stable": "v1"}
PUSH = {"view": "activity",
        "rows": [{"customer_id": "C1", "event_timestamp": "2026-01-02T00:00:00Z",
                  "calls": 3, "spend": 1.5}]}  # fmt: skip
READ = {"features": ["activity:calls"], "entities": {"customer_id": ["C1"]}}
WRITES = [
    Endpoint("router", "PUT", "/admin/v1/routes/churn", ADMIN, ROUTE),
    Endpoint("rollout", "PUT", "/admin/v1/rollouts/churn", ADMIN, example()),
    Endpoint("feature_store", "POST", "/v1/features/push", WRITER, PUSH),
    Endpoint("drift_monitor", "POST", "/v1/feedback", FEEDBACK,
             {"model": "churn", "ids": ["r1"], "labels": [1]}),
]  # fmt: skip
READS = [
    Endpoint("router", "GET", "/admin/v1/routes", ADMIN, None),
    Endpoint("rollout", "GET", "/admin/v1/rollouts", ADMIN, None),
    Endpoint("feature_store", "POST", "/v1/features/get-online", READER, READ),
    Endpoint("feature_store", "POST", "/get-online-features", READER, READ),
    Endpoint("feature_store", "GET", "/v1/features/views", READER, None),
]
EVERY = WRITES + READS


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Process]]:
    root = tmp_path_factory.mktemp("auth")
    registry = register(root / "registry")
    repo = definitions(root / "f.yaml", write_source(root / "s.parquet", [("C1", 1, 2, 0.5)]))
    with ExitStack() as stack:
        url, _ = stack.enter_context(redis_server(root / "redis"))
        subprocess.run([*sluice_command(), "features", "apply", "-f", str(repo),
                        "--redis-url", url], check=True, capture_output=True)  # fmt: skip
        commands = {
            "router": ["router", "--registry", str(registry.root)],
            "rollout": ["rollout-controller"],
            "feature_store": ["feature-store"],
            "drift_monitor": ["drift-monitor", "--registry", str(registry.root)],
        }
        procs = {}
        for name, command in commands.items():
            port = free_port()
            argv = [*sluice_command(), "serve", *command, "--redis-url", url, "--port", str(port)]
            procs[name] = stack.enter_context(
                running(
                    argv,
                    log=root / f"{name}.log",
                    env=ENV,
                    ready_url=f"http://127.0.0.1:{port}/readyz",
                )
            )
        yield procs


def call(proc: Process, endpoint: Endpoint, authorization: str | None, **kwargs: Any) -> Any:
    headers = {"authorization": authorization} if authorization is not None else {}
    if endpoint.body is not None and "content" not in kwargs:
        kwargs["json"] = endpoint.body
    return httpx.request(
        endpoint.method, f"{proc.url}{endpoint.path}", headers=headers, timeout=60, **kwargs
    )


def error(response: httpx.Response) -> dict[str, Any]:
    """Our error body; on Feast's paths, Feast's detail (a JSON string of a document whose
    class a Feast client raises: FeastPermissionError for a refused token)."""
    doc = response.json()
    if isinstance(doc, str):
        detail = json.loads(doc)
        assert detail["module"] == "feast.errors"
        classes = {"FeastPermissionError": "unauthorized"}
        return {"code": classes.get(detail["class"], detail["class"]), "message": detail["message"]}
    body: dict[str, Any] = doc["error"]
    assert set(body) >= {"code", "message"}
    return body


@pytest.mark.parametrize("endpoint", EVERY, ids=str)
def test_the_right_token_is_needed(services: dict[str, Process], endpoint: Endpoint) -> None:
    proc = services[endpoint.service]
    missing = call(proc, endpoint, None)
    assert missing.status_code == 401, missing.text
    assert "Authorization: Bearer" in error(missing)["message"]
    for wrong in [
        f"Bearer {endpoint.token}x",
        f"Bearer {ADMIN if endpoint.token != ADMIN else WRITER}",
        f"Bearer {endpoint.token},{endpoint.token}-old",  # the variable's value is no token
        f"Bearer {ADMIN if endpoint.token != ADMIN else WRITER}-old",
    ]:
        refused = call(proc, endpoint, wrong)
        assert refused.status_code == 401, (wrong, refused.text)
        assert error(refused)["code"] == "unauthorized"
    bare = call(proc, endpoint, endpoint.token)
    assert bare.status_code == 401
    assert "bare token" in error(bare)["message"]
    for scheme in ["Bearer", "bearer", "BEARER"]:
        ok = call(proc, endpoint, f"{scheme} {endpoint.token}")
        assert 200 <= ok.status_code < 300, (scheme, ok.text)
    rotating = call(proc, endpoint, f"Bearer {endpoint.token}-old")
    assert 200 <= rotating.status_code < 300, rotating.text


def peak_rss(proc: Process) -> int:
    """The process's peak resident memory in bytes (VmHWM)."""
    for line in Path(f"/proc/{proc.popen.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def stream() -> Iterator[bytes]:
    """50 MiB of a JSON-looking body, sent chunked (no Content-Length to refuse it by)."""
    yield b'{"padding": "'
    for _ in range(HUGE // CHUNK):
        yield b"x" * CHUNK
    yield b'"}'


def huge(proc: Process, endpoint: Endpoint, authorization: str | None, **kwargs: Any) -> int:
    """Send a 50 MiB body; the status answered (a refusal may also cut the upload off)."""
    try:
        return int(call(proc, endpoint, authorization, **kwargs).status_code)
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
        raise AssertionError(f"{endpoint}: no answer to a huge body: {exc!r}") from None


@pytest.mark.parametrize("endpoint", WRITES, ids=str)
def test_a_huge_body_is_refused_without_being_held(
    services: dict[str, Process], endpoint: Endpoint
) -> None:
    proc = services[endpoint.service]
    before = peak_rss(proc)
    token = f"Bearer {endpoint.token}"
    declared = b"x" * HUGE
    for authorization, content, status in [
        (None, stream(), 401),
        (None, declared, 401),
        (token, stream(), 413),
        (token, declared, 413),
    ]:
        answered = huge(proc, endpoint, authorization, content=content)
        grown = peak_rss(proc) - before
        what = f"{endpoint} with {authorization or 'no token'}"
        assert grown < 20 * MIB, f"{what}: peak memory grew {grown / MIB:.0f} MiB"
        assert answered == status, what
    ok = call(proc, endpoint, token)  # still serving
    assert 200 <= ok.status_code < 300, ok.text


def test_the_router_sends_the_read_token_to_the_feature_store(
    services: dict[str, Process],
) -> None:
    """The router's ``http`` feature lookup, on its own HTTP client, against the real store."""
    url = services["feature_store"].url or ""
    pushed = httpx.post(
        f"{url}/v1/features/push", json=PUSH, headers={"authorization": f"Bearer {WRITER}"}
    )
    assert pushed.status_code == 200, pushed.text

    async def lookup(token: str | None) -> Any:
        client = Http1Upstream(connections=2, connect_timeout=5)
        try:
            found = HttpFeatureLookup(url, client, 10, token)
            return await found.lookup(["activity:calls"], "customer_id", ["C1"])
        finally:
            await client.close()

    assert asyncio.run(lookup(READER)) == {"activity:calls": ([3], ["PRESENT"])}
    assert asyncio.run(lookup(f"{READER}-old")) == {"activity:calls": ([3], ["PRESENT"])}
    with pytest.raises(UpstreamFailure, match="401"):
        asyncio.run(lookup(None))
