"""/livez and /readyz: readiness runs every check within a bound and names what failed."""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette

from sluice.core.health import Check, health_routes, ping_check
from tests.support.asgi import AppClient


class Client:
    """A dependency that answers PING, hangs (a frozen Redis) or refuses (a dead one)."""

    def __init__(self, state: str) -> None:
        self.state = state

    async def ping(self) -> bool:
        if self.state == "frozen":
            await asyncio.Event().wait()
        if self.state == "dead":
            raise ConnectionError("Error 111 connecting to 10.0.0.7:6379. Connection refused.")
        return True


def app_with(*checks: Check) -> AppClient:
    app = Starlette()
    livez, readyz = health_routes(*checks, timeout=0.2, detail=lambda: {"extra": 1})
    app.add_route("/livez", livez)
    app.add_route("/readyz", readyz)
    return AppClient(app)


def test_ready_when_every_check_passes() -> None:
    with app_with(ping_check("redis", Client("up"))) as client:
        resp = client.get("/readyz")
        assert resp.status_code == 200
        assert resp.json() == {"status": "ready", "checks": {"redis": "ok"}, "extra": 1}


def test_a_frozen_or_dead_dependency_is_503_naming_it_and_liveness_stays() -> None:
    async def table() -> str | None:
        return None

    for state, why in (("frozen", "no answer within 0.2s"), ("dead", "unreachable")):
        checks = (ping_check("redis", Client(state)), Check("routing_table", table))
        with app_with(*checks) as client:
            resp = client.get("/readyz")
            assert resp.status_code == 503
            doc = resp.json()
            assert doc["checks"]["routing_table"] == "ok"
            assert doc["checks"]["redis"].startswith(why)
            assert doc["reason"].startswith(f"redis: {why}")
            assert "10.0.0.7" not in resp.text  # addresses stay in the logs
            assert client.get("/livez").status_code == 200
