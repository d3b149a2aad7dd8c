"""The per-client rate limit is one limit across router replicas: two real router
processes on one Redis admit what one would, counted in outcomes (never in rates)."""

from __future__ import annotations

import itertools
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import httpx

from tests.integration.router.conftest import metric
from tests.support.procs import free_port, redis_server, running, sluice_command

BURST = 10
RATE = 0.001  # per second: one request comes back every 1,000 s, so none during the test
REQUESTS = 4 * BURST  # per-replica buckets would admit 2 * BURST of these


def test_two_replicas_share_one_budget(redis_url: str, tmp_path: Path) -> None:
    env = {
        "SLUICE_REDIS_URL": redis_url,
        "SLUICE_ROUTER_RATE_LIMIT_RPS": str(RATE),
        "SLUICE_ROUTER_RATE_LIMIT_BURST": str(BURST),
        # a slow machine must not turn a check into a fallback decision; and if one
        # happened anyway, it may only refuse (never admit more than the shared budget)
        "SLUICE_ROUTER_RATE_LIMIT_TIMEOUT_SECONDS": "5",
        "SLUICE_ROUTER_RATE_LIMIT_FALLBACK": "closed",
        "SLUICE_ROUTER_FEATURE_LOOKUP": "off",
    }
    with ExitStack() as stack:
        urls = []
        for _ in range(2):
            port = free_port()
            proc = stack.enter_context(
                running(
                    [*sluice_command(), "serve", "router", "--port", str(port)],
                    log=tmp_path / f"router-{port}.log",
                    env=env,
                    ready_url=f"http://127.0.0.1:{port}/readyz",
                )
            )
            urls.append(proc.url or "")
        clients = [stack.enter_context(httpx.Client(base_url=u, timeout=30)) for u in urls]
        per_replica: dict[str, Counter[int]] = {u: Counter() for u in urls}
        # no API keys configured: the key names the client (fresh per run: the bucket lives
        # in the session's Redis)
        headers = {"x-api-key": f"client-{uuid.uuid4().hex}"}
        started = time.monotonic()
        for client in itertools.islice(itertools.cycle(clients), REQUESTS):
            # no route for the model: an admitted request is a 404, a refused one a 429
            resp = client.post("/v1/models/nope:predict", json={"instances": [{}]}, headers=headers)
            per_replica[str(client.base_url).rstrip("/")][resp.status_code] += 1
        elapsed = time.monotonic() - started
        degraded = sum(
            metric(u, "sluice_router_rate_limit_degraded_total", fallback="closed") for u in urls
        )
    outcomes = sum(per_replica.values(), Counter())
    assert set(outcomes) <= {404, 429}, outcomes
    assert degraded == 0  # every request was decided by the shared limit in Redis
    # one budget: the burst (plus a refill only if the test ran for over 1,000 s), not twice it
    admitted = outcomes[404]
    assert BURST <= admitted <= BURST + int(elapsed * RATE), (per_replica, elapsed)
    assert outcomes[429] == REQUESTS - admitted
    # and both replicas took part in spending it
    assert all(c[404] > 0 and c[429] > 0 for c in per_replica.values()), per_replica


def _forged_outcomes(tmp_path: Path, trust: bool) -> Counter[int]:
    """Requests from 127.0.0.1 under key-less clients, each claiming another address."""
    with ExitStack() as stack:
        url, _ = stack.enter_context(redis_server(tmp_path / f"redis-{trust}"))
        port = free_port()
        env = {
            "SLUICE_REDIS_URL": url,
            "SLUICE_ROUTER_RATE_LIMIT_RPS": str(RATE),
            "SLUICE_ROUTER_RATE_LIMIT_BURST": str(BURST),
            "SLUICE_ROUTER_RATE_LIMIT_TIMEOUT_SECONDS": "5",
            "SLUICE_ROUTER_TRUST_FORWARDED_FOR": str(trust).lower(),
            "SLUICE_ROUTER_FEATURE_LOOKUP": "off",
        }
        proc = stack.enter_context(
            running(
                [*sluice_command(), "serve", "router", "--port", str(port)],
                log=tmp_path / f"router-{trust}.log",
                env=env,
                ready_url=f"http://127.0.0.1:{port}/readyz",
            )
        )
        client = stack.enter_context(httpx.Client(base_url=proc.url or "", timeout=30))
        outcomes: Counter[int] = Counter()
        for i in range(2 * BURST):
            forged = {"x-forwarded-for": f"203.0.113.{i}", "x-forwarded-proto": "https"}
            resp = client.post("/v1/models/nope:predict", json={"instances": [{}]}, headers=forged)
            outcomes[resp.status_code] += 1
    return outcomes


def test_a_forged_forwarded_for_moves_no_client_to_a_new_bucket(tmp_path: Path) -> None:
    """X-Forwarded-For names the client only with trust_forwarded_for (behind a trusted
    ingress): otherwise the peer's address is the client, even from 127.0.0.1, where a
    sidecar or a port-forward puts every caller."""
    assert _forged_outcomes(tmp_path, trust=False) == {404: BURST, 429: BURST}
    assert _forged_outcomes(tmp_path, trust=True) == {404: 2 * BURST}
