"""Drive an ASGI app from plain (sync) unit tests: its own event loop, its lifespan, httpx.

Starlette's TestClient now warns unless an extra package is installed, and the tests run
with warnings as errors; this is the small piece of it the unit tests need.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import httpx
from starlette.applications import Starlette

T = TypeVar("T")


class AppClient:
    """``with AppClient(app) as client: client.get("/readyz")``.

    The app's background tasks (model loading, watchers, workers) run whenever a call runs.
    """

    def __init__(self, app: Starlette, headers: dict[str, str] | None = None) -> None:
        """``headers`` go with every call (e.g. a write token)."""
        self.app = app
        self._runner = asyncio.Runner()
        transport = httpx.ASGITransport(app=app)
        self._client = httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=headers
        )
        self._lifespan: AbstractAsyncContextManager[Any] = app.router.lifespan_context(app)

    def __enter__(self) -> AppClient:
        self._runner.run(self._lifespan.__aenter__())
        return self

    def __exit__(self, *exc: object) -> None:
        self._runner.run(self._lifespan.__aexit__(None, None, None))
        self._runner.run(self._client.aclose())
        self._runner.close()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._runner.run(self._client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def post_concurrently(self, url: str, bodies: list[Any]) -> list[httpx.Response]:
        """POST every JSON body at once and wait for all the answers."""

        async def send() -> list[httpx.Response]:
            return list(await asyncio.gather(*(self._client.post(url, json=b) for b in bodies)))

        return self._runner.run(send())

    def get_concurrently(self, url: str, n: int, **kwargs: Any) -> list[httpx.Response]:
        """``n`` GETs at once (each on a connection of its own to whatever the app calls)."""

        async def send() -> list[httpx.Response]:
            return list(await asyncio.gather(*(self._client.get(url, **kwargs) for _ in range(n))))

        return self._runner.run(send())
