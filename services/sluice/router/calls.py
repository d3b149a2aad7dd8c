"""Calls to one version's replicas: per-version timeout, retry on the next replica,
a circuit breaker per version, and the per (model, version, role) metrics."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from sluice.core.predlog import Role
from sluice.core.routes import Route
from sluice.router.backends import Reply, UpstreamClient, UpstreamFailure
from sluice.router.breaker import Breaker
from sluice.router.codec import Frame, v1_body, v2_body
from sluice.router.enrich import VersionSchema
from sluice.router.errors import BadGateway
from sluice.router.metrics import Metrics

RETRY_STATUSES = frozenset((502, 503, 504))
JSON = {"content-type": "application/json"}


class UpstreamStatus(Exception):
    """The upstream answered 5xx (after retries); ``reply`` is what it said."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"upstream answered {reply.status}")
        self.reply = reply


class Upstreams:
    """Sends requests to versions as the routing table describes them."""

    def __init__(
        self,
        client: UpstreamClient,
        metrics: Metrics,
        *,
        timeout: float,
        retries: int,
        breaker_failures: int,
        breaker_cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.metrics = metrics
        self.timeout = timeout
        self.retries = retries
        self.clock = clock
        self._breaker_args = (breaker_failures, breaker_cooldown)
        self._breakers: dict[tuple[str, str], Breaker] = {}
        self._turn: dict[tuple[str, str], int] = {}

    def breaker(self, model: str, version: str) -> Breaker:
        key = (model, version)
        found = self._breakers.get(key)
        if found is None:
            found = self._breakers[key] = Breaker(*self._breaker_args)
        return found

    def reset(self, model: str, version: str) -> None:
        """Forget a version's breaker (its upstreams changed)."""
        if self._breakers.pop((model, version), None) is not None:
            self.metrics.child(self.metrics.circuit_open, model, version).set(0)

    def allow(self, model: str, version: str) -> bool:
        """Whether the version's breaker lets a call through now."""
        return self.breaker(model, version).allow(self.clock())

    async def infer(
        self, route: Route, version: str, frame: Frame, schema: VersionSchema, role: Role
    ) -> tuple[Reply, float]:
        """POST the version's projection of ``frame`` (only the features it takes), in the
        protocol the client used. Returns (reply, seconds)."""
        model = route.model
        if frame.protocol == "v1":
            body, path = v1_body(frame, schema.features), f"/v1/models/{model}:predict"
        else:
            body = v2_body(frame, schema.features, schema.datatypes)
            path = f"/v2/models/{model}/versions/{version}/infer"
        return await self.send(route, version, path, body, role, JSON)

    async def send(
        self,
        route: Route,
        version: str,
        path: str,
        body: bytes,
        role: Role,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[Reply, float]:
        """POST ``body``; retry on the next replica after a connect error or 502/503/504.

        Raises UpstreamFailure (no answer) or UpstreamStatus (5xx). A 4xx is the
        caller's problem, returned as is, and counts as a success for the breaker.
        """
        model, upstream = route.model, route.upstreams[version]
        timeout = upstream.timeout_seconds or self.timeout
        turn = self._turn.get((model, version), 0)
        self._turn[(model, version)] = turn + 1
        urls = upstream.urls
        failure: UpstreamFailure | UpstreamStatus | None = None
        for attempt in range(1 + self.retries):
            url = urls[(turn + attempt) % len(urls)]
            started = time.perf_counter()
            try:
                reply = await self.client.request("POST", url + path, body, timeout, headers)
            except UpstreamFailure as exc:
                self.metrics.failed(model, version, role, exc.reason)
                failure = exc
                if exc.reason != "connect":  # a timeout or too large an answer: not again
                    break
                continue
            seconds = time.perf_counter() - started
            if reply.status < 500:
                self.record(model, version, ok=True)
                self.metrics.answered(model, version, role, seconds)
                return reply, seconds
            self.metrics.failed(model, version, role, "status")
            failure = UpstreamStatus(reply)
            if reply.status not in RETRY_STATUSES:
                break
        self.record(model, version, ok=False)
        assert failure is not None
        raise failure

    async def get(self, route: Route, version: str, path: str) -> Reply:
        """A GET (metadata, readiness) answered by the first replica that answers."""
        problems = []
        for url in route.upstreams[version].urls:
            try:
                return await self.client.request("GET", url + path, None, self.timeout)
            except UpstreamFailure as exc:
                problems.append(str(exc))
        raise BadGateway(f"version {version!r} of {route.model!r}: {'; '.join(problems)}")

    def record(self, model: str, version: str, *, ok: bool) -> None:
        """Report a call's outcome to the version's breaker (and its gauge)."""
        breaker = self.breaker(model, version)
        was_open = breaker.is_open
        breaker.record(ok, self.clock())
        if breaker.is_open != was_open or not ok:
            self.metrics.child(self.metrics.circuit_open, model, version).set(int(breaker.is_open))
