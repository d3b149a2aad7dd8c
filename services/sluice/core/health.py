"""Liveness and readiness: /livez answers while the process serves; /readyz runs checks.

/livez never looks at a dependency: a Redis outage must not get every pod restarted.
/readyz runs the service's checks (a dependency's ping, a state of its own) at once, each
bounded by ``timeout`` seconds, and answers 200 when all pass, else 503 with the failing
ones named::

    {"status": "not ready", "reason": "redis: no answer within 0.5s",
     "checks": {"redis": "no answer within 0.5s", "routing_table": "ok"}}

A reason never carries an address or a password (the probe's answer can leave the
cluster); the full error is logged once when a check starts failing. Kubernetes probes use
/livez and /readyz; the V2 protocol's own health routes call the same checks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from redis.exceptions import AuthenticationError
from starlette.requests import Request
from starlette.responses import Response

from sluice.core.handlers import json_response

log = logging.getLogger(__name__)

READY_TIMEOUT = 0.5
"""Seconds one readiness check may take (Kubernetes' probe timeout is 1 s by default)."""

ReadyCheck = Callable[[], Awaitable[str | None]]
"""Returns None when ready, else a short reason why not."""


class Pingable(Protocol):
    def ping(self) -> Awaitable[Any]: ...


@dataclass(frozen=True)
class Check:
    """One named readiness check."""

    name: str
    probe: ReadyCheck


def ping_check(name: str, client: Pingable) -> Check:
    """A check that ``client`` (a Redis client) answers PING."""

    async def probe() -> str | None:
        await client.ping()
        return None

    return Check(name, probe)


class Readiness:
    """Runs checks at once, each within ``timeout``; remembers which were failing (to log
    a failure once, when it starts)."""

    def __init__(self, checks: Sequence[Check | ReadyCheck], timeout: float = READY_TIMEOUT):
        self.checks = [c if isinstance(c, Check) else Check("service", c) for c in checks]
        self.timeout = timeout
        self._failing: set[str] = set()

    async def run(self) -> dict[str, str]:
        """Each check's outcome: "ok" or why not."""
        outcomes = await asyncio.gather(*(self._one(c) for c in self.checks))
        return {c.name: outcome for c, outcome in zip(self.checks, outcomes, strict=True)}

    async def reason(self) -> str | None:
        """None when every check passes, else the failing ones in one line."""
        failed = [f"{name}: {why}" for name, why in (await self.run()).items() if why != "ok"]
        return "; ".join(failed) or None

    async def _one(self, check: Check) -> str:
        try:
            async with asyncio.timeout(self.timeout):
                why = await check.probe()
        except TimeoutError:
            why = f"no answer within {self.timeout:g}s"
            self._log(check.name, why)
        except Exception as exc:
            why = _unreachable(exc)
            self._log(check.name, f"{why}: {exc}")
        if why is None:
            self._failing.discard(check.name)
            return "ok"
        return why

    def _log(self, name: str, detail: str) -> None:
        if name not in self._failing:
            self._failing.add(name)
            log.warning("readiness check %s failed: %s", name, detail)


def _unreachable(exc: BaseException) -> str:
    """Why a check failed, in words safe to show a client: the innermost cause's kind (a
    wrapped AuthenticationError is a refused password, not just "unavailable"), never
    its text (which may hold addresses).

    >>> _unreachable(RuntimeError("x"))
    'unreachable (RuntimeError)'
    """
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    if isinstance(root, AuthenticationError):
        return "password refused (AuthenticationError): check SLUICE_REDIS_PASSWORD"
    return f"unreachable ({type(root).__name__})"


def health_routes(
    *checks: Check | ReadyCheck,
    timeout: float = READY_TIMEOUT,
    detail: Callable[[], Mapping[str, Any]] | None = None,
) -> tuple[Callable[[Request], Awaitable[Response]], ...]:
    """The (livez, readyz) endpoint pair; ``detail`` adds fields to every /readyz answer."""
    readiness = Readiness(checks, timeout)

    async def livez(_: Request) -> Response:
        return json_response(200, {"status": "live"})

    async def readyz(_: Request) -> Response:
        outcomes = await readiness.run()
        failed = [f"{name}: {why}" for name, why in outcomes.items() if why != "ok"]
        body: dict[str, Any] = {"status": "not ready" if failed else "ready", "checks": outcomes}
        if failed:
            body["reason"] = "; ".join(failed)
        if detail is not None:
            body.update(detail())
        return json_response(503 if failed else 200, body)

    return livez, readyz
