"""BodyLimit: a body over the limit is a 413 before the app reads it, declared or streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sluice.core.http import BodyLimit
from tests.support.asgi import AppClient

LIMIT = 1024


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"size": len(body)})


def client() -> AppClient:
    app = Starlette(routes=[Route("/echo", echo, methods=["POST"])])
    app.add_middleware(BodyLimit, limit=LIMIT)
    return AppClient(app)


async def chunks(count: int, size: int = 300) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b"x" * size


def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    with client() as c:
        assert c.post("/echo", content=b"x" * LIMIT).json() == {"size": LIMIT}
        assert c.post("/echo", content=chunks(3)).json() == {"size": 900}


def test_a_body_over_the_limit_is_413_declared_or_streamed() -> None:
    with client() as c:
        declared = c.post("/echo", content=b"x" * (LIMIT + 1))
        streamed = c.post("/echo", content=chunks(4))
    assert declared.status_code == streamed.status_code == 413
    assert declared.json()["error"] == {
        "code": "payload_too_large",
        "message": f"request body of {LIMIT + 1} bytes is over the limit of {LIMIT}",
    }
    assert streamed.json()["error"]["message"] == f"request body is over the limit of {LIMIT} bytes"
