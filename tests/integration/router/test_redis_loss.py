"""Losing the routing table's Redis under load, through a real router: frozen (SIGSTOP /
SIGCONT), killed and restarted empty, killed and restarted with its data (AOF), and
keeping the table but losing its last writes.

The router under test keeps its routing table in a Redis of its own (killable without
disturbing the session's stack); features still come from the stack's Redis. A thread
sends predictions the whole time and every status is counted: users must keep getting
answers from the last known table, never 404 ``model_not_routed``; after Redis comes back
nothing needs a person (the table is re-seeded, at a higher revision), and the logs,
metrics and /readyz say what happened.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from sluice.core.routes import REVISIONS, ROUTES
from tests.integration.router.conftest import ADMIN, MODEL, TOKEN, Stack, metric, wait_for
from tests.support.load import Load
from tests.support.procs import Process, free_port, redis_on, running, sluice_command

AOF = ("--appendonly", "yes", "--appendfsync", "always")


class Setup:
    def __init__(self, stack: Stack, root: Path) -> None:
        self.stack = stack
        self.root = root
        self.port = free_port()
        self.redis_dir = root / "redis"

    @contextmanager
    def redis(self, *extra: str, fresh: bool = False) -> Iterator[Process]:
        workdir = self.root / f"redis-empty-{free_port()}" if fresh else self.redis_dir
        with redis_on(self.port, workdir, *extra) as proc:
            yield proc

    @contextmanager
    def router(self) -> Iterator[Process]:
        port = free_port()
        argv = [*sluice_command(), "serve", "router", "--port", str(port)]
        env = {
            "SLUICE_ADMIN_TOKEN": TOKEN,
            "SLUICE_REDIS_URL": f"redis://127.0.0.1:{self.port}/0",
            "SLUICE_ROUTER_FEATURE_REDIS_URL": self.stack.redis_url,
            "SLUICE_ROUTER_REGISTRY": str(self.stack.registry.root),
            # a declared route: re-seeded as well as the one set through the admin API
            "SLUICE_ROUTER_ROUTES": json.dumps(
                {"declared": {"upstreams": {"v1": self.stack.servers["v1"]}, "stable": "v1"}}
            ),
        }
        with running(
            argv, log=self.root / f"router-{port}.log", env=env,
            ready_url=f"http://127.0.0.1:{port}/readyz",
        ) as proc:  # fmt: skip
            yield proc


def route(url: str) -> dict[str, Any]:
    resp = httpx.get(f"{url}/admin/v1/routes/{MODEL}", headers=ADMIN, timeout=5)
    doc: dict[str, Any] = resp.json()
    return doc if resp.status_code == 200 else {}


def readyz(url: str) -> tuple[int, dict[str, Any]]:
    resp = httpx.get(f"{url}/readyz", timeout=5)
    doc: dict[str, Any] = resp.json()
    return resp.status_code, doc


def set_route(stack: Stack, url: str) -> int:
    body = {"upstreams": stack.servers, "stable": "v1", "candidate": "v2", "mode": "canary"}
    resp = httpx.put(
        f"{url}/admin/v1/routes/{MODEL}", json={**body, "weight": 30}, headers=ADMIN, timeout=10
    )
    assert resp.status_code == 200, resp.text
    revision: int = resp.json()["revision"]
    return revision


@pytest.fixture
def setup(stack: Stack, tmp_path: Path) -> Setup:
    return Setup(stack, tmp_path)


def records(root: Path) -> list[dict[str, Any]]:
    """The routers' JSON log records."""
    lines = [line for p in root.glob("router-*.log") for line in p.read_text().splitlines()]
    return [json.loads(line) for line in lines if line.startswith("{")]


def dead_for_a_while(router: str, load: Load) -> tuple[int, dict[str, Any]]:
    """With Redis gone: /readyz turns 503, and users keep getting answers meanwhile."""
    wait_for(lambda: readyz(router)[0] == 503, 60, "/readyz 503 while Redis is gone")
    status, doc = readyz(router)
    answered = load.answered()
    wait_for(lambda: load.answered() >= answered + 20, 60, "answers while Redis is gone")
    return status, doc


def test_redis_restarted_empty_keeps_every_route_and_revisions_grow(setup: Setup) -> None:
    stack = setup.stack
    with ExitStack() as es:
        redis = es.enter_context(setup.redis())
        router = es.enter_context(setup.router()).url or ""
        before = set_route(stack, router)
        declared_before = httpx.get(f"{router}/admin/v1/routes/declared", headers=ADMIN).json()
        with Load(router, stack.customers(50)) as load:
            wait_for(lambda: load.answered() >= 20, 60, "answers before the loss")
            redis.stop(signal.SIGKILL)
            dead_status, dead = dead_for_a_while(router, load)
            refused = httpx.delete(f"{router}/admin/v1/routes/{MODEL}", headers=ADMIN, timeout=30)
            with setup.redis(fresh=True):
                wait_for(lambda: route(router).get("revision", 0) > before, 60, "re-seed")
                answered = load.answered()
                wait_for(lambda: load.answered() >= answered + 20, 60, "answers after")
                after = route(router)
                declared = httpx.get(f"{router}/admin/v1/routes/declared", headers=ADMIN).json()
                status, ready = readyz(router)
                lost = metric(router, "sluice_router_routing_table_lost_total")
                from_memory = metric(router, "sluice_router_routing_table_from_memory")
        es.close()
    # users: answers all along (Redis dead, then empty), never 404 "not routed"
    assert load.statuses[404] == 0, load.report()
    assert set(load.statuses) == {200}, load.report()
    assert load.statuses[200] >= 60
    # while Redis was dead /readyz said so, without the address; the table was still served
    assert dead_status == 503
    assert dead["checks"]["redis"].startswith("unreachable"), dead
    assert "127.0.0.1" not in json.dumps(dead)
    assert dead["routing_table"]["routes"] == 2 and "lost" not in dead["routing_table"]
    # a change asked for meanwhile is refused, naming Redis but not where it is
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["message"].startswith("Redis is unavailable")
    assert "127.0.0.1" not in refused.text
    # nothing needed a person: the operator's route and the declared one are back in Redis,
    # at one revision above every revision seen before (a stale if_revision cannot match)
    assert after["weight"] == 30 and after["candidate"] == "v2"
    assert after["revision"] > max(before, declared_before["revision"])
    assert declared["revision"] == after["revision"]
    assert declared["upstreams"] == declared_before["upstreams"]
    # and it was said loudly: metric, /readyz detail, an ERROR then a WARNING in the log
    assert lost == 1 and from_memory == 0
    assert status == 200
    assert ready["routing_table"]["lost"]["reseeded"] is True
    assert ready["routing_table"]["lost"]["reseeded_routes"] == 2
    assert ready["routing_table"]["lost"]["reseeded_revision"] == after["revision"]
    logged = records(setup.root)
    assert any(
        r["level"] == "ERROR" and "routing table was lost in Redis" in r["message"] for r in logged
    )
    assert any(
        r["level"] == "WARNING" and "re-seeded the lost routing table" in r["message"]
        for r in logged
    )


def test_redis_frozen_keeps_answering_and_readiness_says_so(setup: Setup) -> None:
    stack = setup.stack
    with setup.redis() as redis, setup.router() as proc:
        router = proc.url or ""
        before = set_route(stack, router)
        with Load(router, stack.customers(50)) as load:
            wait_for(lambda: load.answered() >= 20, 60, "answers before the freeze")
            redis.popen.send_signal(signal.SIGSTOP)
            try:
                frozen_status, frozen = dead_for_a_while(router, load)
            finally:
                redis.popen.send_signal(signal.SIGCONT)
            wait_for(lambda: readyz(router)[0] == 200, 60, "/readyz 200 after SIGCONT")
            answered = load.answered()
            wait_for(lambda: load.answered() >= answered + 20, 60, "answers after")
        after = route(router)
        lost = metric(router, "sluice_router_routing_table_lost_total")
    assert set(load.statuses) == {200}, load.report()
    assert frozen_status == 503
    assert frozen["checks"]["redis"].startswith("no answer within"), frozen
    assert frozen["checks"]["routing_table"] == "ok"
    assert after["revision"] == before  # nothing was lost, nothing re-seeded
    assert lost == 0
    assert not any("routing table was lost" in r["message"] for r in records(setup.root))


def test_redis_restarted_with_its_data_is_not_a_loss(setup: Setup) -> None:
    stack = setup.stack
    with ExitStack() as es:
        redis = es.enter_context(setup.redis(*AOF))
        router = es.enter_context(setup.router()).url or ""
        before = set_route(stack, router)
        with Load(router, stack.customers(50)) as load:
            wait_for(lambda: load.answered() >= 20, 60, "answers before the restart")
            redis.stop(signal.SIGKILL)
            dead_status, _ = dead_for_a_while(router, load)
            with setup.redis(*AOF):
                wait_for(lambda: readyz(router)[0] == 200, 60, "/readyz 200 again")
                answered = load.answered()
                wait_for(lambda: load.answered() >= answered + 20, 60, "answers after")
                # the admin API reads Redis itself, on pooled connections the restart broke
                after = route(router)
                lost = metric(router, "sluice_router_routing_table_lost_total")
        es.close()
    assert set(load.statuses) == {200}, load.report()
    assert dead_status == 503
    assert after["revision"] == before and after["weight"] == 30
    assert lost == 0
    assert not any("routing table was lost" in r["message"] for r in records(setup.root))


def test_redis_that_lost_its_last_writes_gets_them_back(setup: Setup) -> None:
    """Same table, older state (an AOF fsynced every second, a failover to a lagging
    replica): the router puts back the route it read last, above every revision."""
    stack = setup.stack
    with setup.redis() as _, setup.router() as proc:
        router = proc.url or ""
        client = redis.Redis(port=setup.port)
        set_route(stack, router)
        kept = {k: client.hgetall(k) for k in (ROUTES, REVISIONS)}
        body = {"upstreams": stack.servers, "stable": "v1", "candidate": "v2", "mode": "canary"}
        resp = httpx.put(
            f"{router}/admin/v1/routes/{MODEL}", json={**body, "weight": 60}, headers=ADMIN
        )
        latest = resp.json()["revision"]
        with Load(router, stack.customers(50)) as load:
            wait_for(lambda: load.answered() >= 20, 60, "answers before the rewind")
            with client.pipeline(transaction=True) as pipe:  # the state before the last write
                pipe.delete(ROUTES, REVISIONS)
                for key, fields in kept.items():
                    pipe.hset(key, mapping=fields)
                pipe.execute()
            wait_for(lambda: route(router).get("revision", 0) > latest, 60, "re-seed")
            answered = load.answered()
            wait_for(lambda: load.answered() >= answered + 20, 60, "answers after")
        after = route(router)
        lost = metric(router, "sluice_router_routing_table_lost_total")
        client.close()
    assert set(load.statuses) == {200}, load.report()
    assert after["weight"] == 60 and after["revision"] > latest
    assert lost == 1
    assert any(
        r["level"] == "ERROR" and f"went back from revision {latest}" in r["message"]
        for r in records(setup.root)
    )
