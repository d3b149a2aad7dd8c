"""core.http.HotPath: the one hot path of the model server and the router, called as the
ASGI server calls it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.types import Message, Receive, Scope

from sluice.core.errors import InvalidInput, SluiceError
from sluice.core.http import Answer, Disconnected, HotPath, HttpMetrics


class Echo(HotPath[str]):
    """Answers the body back; a body naming a failure raises it."""

    async def answer(
        self, scope: Scope, receive: Receive, rid: str, template: str, target: str
    ) -> Answer:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        body: bytes = message["body"]
        if body == b"invalid":
            raise InvalidInput("invalid, as asked")
        if body == b"crash":
            raise RuntimeError("boom")
        params = scope["path_params"]
        return 200, f"{template} {target} {params['model']} {rid} ".encode() + body, []

    def error(self, exc: SluiceError, template: str, target: str) -> Answer:
        return exc.status, f"{template} ({target}): {exc.message}".encode(), []


def call(path: str, body: bytes | None, headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    registry = CollectorRegistry()
    metrics = HttpMetrics(registry, "test")
    hot = Echo([("/m/{model}/infer", "v2")], metrics)
    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": path}
    scope["headers"] = headers or []
    sent: list[Message] = []

    async def receive() -> Message:
        if body is None:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    matched = hot.match(scope)
    if matched:
        asyncio.run(hot(scope, receive, send))

    def count(code: str) -> float:
        labels = {"endpoint": "/m/{model}/infer", "code": code}
        return registry.get_sample_value("sluice_test_http_requests_total", labels) or 0.0

    return matched, sent, count


def test_a_match_is_answered_with_the_request_id_and_counted() -> None:
    matched, sent, count = call("/m/churn/infer", b"hi", [(b"x-request-id", b"abc")])
    assert matched
    assert sent[0]["status"] == 200 and (b"x-request-id", b"abc") in sent[0]["headers"]
    assert sent[1]["body"] == b"/m/{model}/infer v2 churn abc hi"
    assert count("200") == 1


def test_other_paths_and_methods_are_not_matched() -> None:
    assert not call("/m/churn/explain", b"hi")[0]
    hot = Echo([("/m/{model}/infer", "v2")], HttpMetrics(CollectorRegistry(), "test"))
    assert not hot.match({"type": "http", "method": "GET", "path": "/m/churn/infer"})


def test_errors_are_answers_and_unexpected_ones_a_logged_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, sent, count = call("/m/churn/infer", b"invalid")
    assert sent[0]["status"] == 422
    assert sent[1]["body"] == b"/m/{model}/infer (v2): invalid, as asked"
    assert count("422") == 1
    _, sent, count = call("/m/churn/infer", b"crash")
    assert sent[0]["status"] == 500 and b"internal server error" in sent[1]["body"]
    assert count("500") == 1
    assert [r.message for r in caplog.records if r.levelname == "ERROR"] == [
        "unexpected error on /m/churn/infer"
    ]


def test_a_client_gone_before_its_body_is_not_answered_nor_counted() -> None:
    _, sent, count = call("/m/churn/infer", None)
    assert sent == []
    assert count("500") == 0 and count("200") == 0
