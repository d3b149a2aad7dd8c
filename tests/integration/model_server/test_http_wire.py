"""The inference path on the wire, byte by byte over a socket: keep-alive, pipelining,
chunked bodies, ``Expect: 100-continue``, ``Connection: close``, HTTP/1.0, a client that
goes away. The same assertions run against the model server with its hot protocol (the
default) and with uvicorn's ASGI cycle, which is the reference behaviour."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from tests.integration.model_server.conftest import MODEL, StartServer, Trained, v2_inputs
from tests.support.procs import Process

pytestmark = pytest.mark.integration

PATH = f"/v2/models/{MODEL}/infer"


@pytest.fixture(scope="module", params=[True, False], ids=["hot-protocol", "asgi-cycle"])
def wire_server(request: pytest.FixtureRequest, start_server: StartServer) -> Iterator[Process]:
    with start_server(hot_protocol=request.param, max_body_bytes=100_000) as proc:
        yield proc


@pytest.fixture(scope="module")
def body(trained: Trained) -> bytes:
    return json.dumps({"inputs": v2_inputs(trained.rows.head(1))}).encode()


class Conn:
    """A raw HTTP/1.1 connection that reads whole responses (content-length bodies)."""

    def __init__(self, server: Process) -> None:
        assert server.url is not None
        port = int(server.url.rsplit(":", 1)[1])
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def response(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            assert self._fill(), f"connection closed mid-response: {self.buf!r}"
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines:
            name, value = line.split(":", 1)
            assert name.lower() not in headers, f"header {name} twice: {head!r}"
            headers[name.lower()] = value.strip()
        if status_line.split()[1] == "100":
            return 100, headers, b""
        length = int(headers["content-length"])
        while len(self.buf) < length:
            assert self._fill(), "connection closed mid-body"
        payload, self.buf = self.buf[:length], self.buf[length:]
        return int(status_line.split()[1]), headers, payload

    def closed_by_server(self) -> bool:
        return not self.buf and not self._fill()

    def close(self) -> None:
        self.sock.close()


def request(body: bytes, *extra: str, version: str = "1.1", rid: str | None = None) -> bytes:
    head = [f"POST {PATH} HTTP/{version}", "Host: test", "Content-Type: application/json"]
    head += [f"Content-Length: {len(body)}", *extra]
    if rid is not None:
        head.append(f"x-request-id: {rid}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def assert_prediction(status: int, headers: dict[str, str], payload: bytes) -> None:
    assert status == 200, payload
    assert headers["content-type"] == "application/json"
    assert {"date", "server", "x-request-id"} <= headers.keys()
    assert [o["name"] for o in json.loads(payload)["outputs"]] == ["label", "probabilities"]


def test_keep_alive_and_pipelining_answer_in_order(wire_server: Process, body: bytes) -> None:
    conn = Conn(wire_server)
    try:
        for n in range(3):  # one after another on one connection
            conn.send(request(body, rid=f"seq-{n}"))
            status, headers, payload = conn.response()
            assert_prediction(status, headers, payload)
            assert headers["x-request-id"] == f"seq-{n}"
            assert "connection" not in headers
        # pipelined: five requests in one write, five answers in the order asked
        conn.send(b"".join(request(body, rid=f"pipe-{n}") for n in range(5)))
        for n in range(5):
            status, headers, payload = conn.response()
            assert_prediction(status, headers, payload)
            assert headers["x-request-id"] == f"pipe-{n}"
    finally:
        conn.close()


def test_chunked_body_and_expect_continue(wire_server: Process, body: bytes) -> None:
    conn = Conn(wire_server)
    try:
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        ).encode()
        half = len(body) // 2
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:half], body[half:]))
        conn.send(head + chunks + b"0\r\n\r\n")
        assert_prediction(*conn.response())
    finally:
        conn.close()
    conn = Conn(wire_server)
    try:  # the client waits for 100 Continue before it sends the body
        head = request(body, "Expect: 100-continue")
        conn.send(head[: -len(body)])
        status, _, _ = conn.response()
        assert status == 100
        conn.send(body)
        assert_prediction(*conn.response())
    finally:
        conn.close()


def test_connection_close_and_http_1_0_end_the_connection(
    wire_server: Process, body: bytes
) -> None:
    for extra, version in ((("Connection: close",), "1.1"), ((), "1.0")):
        conn = Conn(wire_server)
        try:
            conn.send(request(body, *extra, version=version))
            status, headers, payload = conn.response()
            assert_prediction(status, headers, payload)
            assert headers.get("connection") == "close"
            assert conn.closed_by_server()
        finally:
            conn.close()


def test_errors_and_a_client_that_leaves(wire_server: Process, body: bytes) -> None:
    conn = Conn(wire_server)
    try:
        conn.send(request(b"{not json"))
        status, headers, payload = conn.response()
        assert status == 400 and headers["content-type"] == "application/json"
        assert "json" in json.loads(payload)["error"].lower()
        big = b" " * 100_001
        conn.send(request(big))
        status, _, payload = conn.response()
        assert status == 413 and "limit" in json.loads(payload)["error"]
    finally:
        conn.close()
    gone = Conn(wire_server)  # half a body, then away
    gone.send(request(body)[:-10])
    gone.close()
    conn = Conn(wire_server)
    try:
        conn.send(request(body))
        assert_prediction(*conn.response())
    finally:
        conn.close()
