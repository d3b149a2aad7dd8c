"""Readiness and graceful shutdown of a real model server process."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest

from sluice.core.serve import listeners
from tests.integration.model_server.conftest import (
    MODEL,
    VERSION,
    StartServer,
    Trained,
    v2_inputs,
)
from tests.support.procs import free_port

pytestmark = pytest.mark.integration


def test_a_model_that_fails_to_load_is_live_but_never_ready(
    start_server: StartServer, trained: Trained, tmp_path: Path
) -> None:
    registry = tmp_path / "registry"
    shutil.copytree(trained.registry.root, registry)
    (registry / MODEL / VERSION / "model.onnx").write_bytes(b"not an onnx model")
    with start_server(registry=registry, ready_path="/livez") as proc:
        assert proc.url
        for path in ("/readyz", "/v2/health/ready", f"/v2/models/{MODEL}/ready"):
            # the load fails in the background; poll until it has
            for _ in range(200):
                response = httpx.get(f"{proc.url}{path}", timeout=5)
                if "failed" in response.text or path != "/readyz":
                    break
            assert response.status_code == 503, path
        assert "failed to load" in httpx.get(f"{proc.url}/readyz").json()["reason"]
        infer = httpx.post(f"{proc.url}/v2/models/{MODEL}/infer", json={"inputs": []})
        assert infer.status_code == 503
        assert httpx.get(f"{proc.url}/livez").status_code == 200


def test_a_version_not_in_the_registry_stops_the_cli_with_a_message(
    start_server: StartServer, trained: Trained, tmp_path: Path
) -> None:
    with (
        pytest.raises(
            RuntimeError,
            match=r"error: model 'churn' version 'v1' is not in the registry .*versions: v9",
        ),
        start_server(registry=_only_v9(trained, tmp_path)),
    ):
        pass


def _only_v9(trained: Trained, tmp_path: Path) -> Path:
    registry = tmp_path / "registry"
    registry.mkdir()
    (registry / MODEL).mkdir()
    shutil.copytree(trained.registry.root / MODEL / VERSION, registry / MODEL / "v9")
    return registry


def test_sigterm_lets_in_flight_requests_finish(
    start_server: StartServer, trained: Trained
) -> None:
    """Requests whose bodies are still arriving when SIGTERM lands complete with 200."""
    body = orjson.dumps({"inputs": v2_inputs(trained.rows.head(32))})
    with start_server() as proc:
        assert proc.url
        port = int(proc.url.rsplit(":", 1)[1])
        clients = [_SlowClient(port, body) for _ in range(16)]
        for client in clients:
            client.send_head_and_half()
        # all 16 requests are now in flight: headers read, body half sent
        assert httpx.get(f"{proc.url}/livez").status_code == 200
        proc.popen.send_signal(signal.SIGTERM)
        threads = [threading.Thread(target=c.finish) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert [c.status for c in clients] == [200] * 16
        assert all(len(json.loads(c.body)["outputs"][1]["data"]) == 64 for c in clients)
        # uvicorn re-raises the SIGTERM it caught once it has shut down cleanly
        assert proc.popen.wait(15) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in proc.output()


def test_with_reuse_port_two_servers_share_one_port_and_either_serves_it_alone(
    start_server: StartServer, trained: Trained
) -> None:
    body = {"inputs": v2_inputs(trained.rows.head(3))}
    port = free_port()
    with (
        start_server(port=port, reuse_port=True) as first,
        start_server(port=port, reuse_port=True) as second,
    ):
        deadline = time.monotonic() + 60  # its /readyz check may have reached the first
        while listeners(port) < 2:
            assert second.popen.poll() is None, second.output()  # bound it, did not fail
            assert time.monotonic() < deadline, "the second server never listened"
            time.sleep(0.1)
        assert first.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        for _ in range(20):  # new connections each time: all reach the one left
            with httpx.Client(timeout=10) as client:
                answer = client.post(f"{second.url}/v2/models/{MODEL}/infer", json=body)
            assert answer.status_code == 200, answer.text
            assert len(answer.json()["outputs"][0]["data"]) == 3


class _SlowClient:
    def __init__(self, port: int, body: bytes) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.payload = body
        self.status = 0
        self.body = b""

    def send_head_and_half(self) -> None:
        head = (
            f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(self.payload)}\r\n\r\n"
        ).encode()
        self.sock.sendall(head + self.payload[: len(self.payload) // 2])

    def finish(self) -> None:
        self.sock.sendall(self.payload[len(self.payload) // 2 :])
        raw = b""
        while b"\r\n\r\n" not in raw:
            raw += self.sock.recv(65536)
        head, _, rest = raw.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ")[1])
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        while len(rest) < length:
            rest += self.sock.recv(65536)
        self.body = rest
        self.sock.close()
