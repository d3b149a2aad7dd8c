"""The alert webhook against a real local HTTP server that counts the calls it gets.

Retried: connection errors, 5xx and 429 (after its Retry-After, when that is short).
Not retried: any other 4xx. Never a wait after the last try. The waits are recorded
through the sink's ``sleep`` (nothing here sleeps for real).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from sluice.drift_monitor.backends import WebhookAlertSink
from tests.support.procs import free_port

ALERT = {"kind": "drift_persisted", "alert_id": "churn/v1/40"}


class Script:
    """Answers in order (status, headers); the last one repeats. Counts the calls."""

    def __init__(self, *answers: tuple[int, dict[str, str]]) -> None:
        self.answers = list(answers)
        self.calls = 0
        self.url = ""


@contextmanager
def receiver(*answers: tuple[int, dict[str, str]]) -> Iterator[Script]:
    script = Script(*answers)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            status, headers = script.answers[min(script.calls, len(script.answers) - 1)]
            script.calls += 1
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    script.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/retrain"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield script
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def send(url: str, tries: int = 3) -> tuple[bool, list[float]]:
    """Send ALERT once through a real client; return the outcome and the waits asked for."""
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    async def go() -> bool:
        async with httpx.AsyncClient(timeout=5) as client:
            sink = WebhookAlertSink(client, url, tries, backoff=0.5, sleep=record)
            return await sink.send(ALERT)

    return asyncio.run(go()), waits


def test_a_4xx_is_final_one_call_no_wait() -> None:
    for status in (400, 401, 404, 413, 422):
        with receiver((status, {})) as hook:
            assert send(hook.url) == (False, [])
            assert hook.calls == 1, status


def test_5xx_is_retried_and_no_wait_follows_the_last_try() -> None:
    with receiver((503, {})) as hook:
        assert send(hook.url) == (False, [0.5, 1.0])
        assert hook.calls == 3


def test_a_5xx_then_success_stops_at_the_success() -> None:
    with receiver((500, {}), (502, {}), (204, {})) as hook:
        assert send(hook.url, tries=5) == (True, [0.5, 1.0])
        assert hook.calls == 3


def test_429_waits_what_retry_after_says_in_seconds_or_as_a_date() -> None:
    with receiver((429, {"Retry-After": "2"}), (200, {})) as hook:
        assert send(hook.url) == (True, [2.0])
        assert hook.calls == 2
    in_three = formatdate(time.time() + 3, usegmt=True)
    with receiver((503, {"Retry-After": in_three}), (200, {})) as hook:
        ok, waits = send(hook.url)
        assert ok and hook.calls == 2
        assert len(waits) == 1 and 1.0 <= waits[0] <= 3.0


def test_a_retry_after_beyond_the_bound_ends_the_round_without_waiting() -> None:
    with receiver((429, {"Retry-After": "3600"}), (200, {})) as hook:
        assert send(hook.url) == (False, [])
        assert hook.calls == 1


def test_connection_errors_are_retried() -> None:
    url = f"http://127.0.0.1:{free_port()}/nobody-listens"
    assert send(url) == (False, [0.5, 1.0])
