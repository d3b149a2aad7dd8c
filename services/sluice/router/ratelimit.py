"""The per-client rate limit of inference calls (client = API key, else client IP).

Each client may send ``burst`` requests at once and ``rate`` per second after that; a
request over the limit is refused with 429 and ``Retry-After`` = the seconds until one more
is allowed.

The limit is shared by every router replica: the state lives in Redis (GCRA, the
generic cell rate algorithm, :func:`gcra`, run as one Lua script, one round trip per
request, see ``router.store.RedisRateBuckets``), so N replicas admit what one would. When
Redis does not answer within ``timeout`` (or fails), the request is decided by
``fallback`` and Redis is left alone for :data:`RETRY_SECONDS` before it is asked again, so
a slow Redis costs at most one ``timeout`` per replica and period:

- ``local`` (the default): this replica's own token bucket at the same rate: the limit
  still holds per replica (N replicas admit up to N times the rate while Redis is away);
- ``open``: let the request through (no limit while Redis is away);
- ``closed``: refuse it with 429 (the limit never exceeded; no traffic while Redis is away).

Every request decided that way is counted in ``sluice_router_rate_limit_degraded_total``.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal, Protocol

log = logging.getLogger(__name__)

Fallback = Literal["local", "open", "closed"]
RETRY_SECONDS = 1.0
"""After Redis failed a rate-limit check, how long this replica decides without it."""


def gcra(tat: float, now: float, period: float, burst: int) -> tuple[float, float]:
    """One request under GCRA: (the new theoretical arrival time, seconds to wait).

    ``tat`` is when the client's bucket would be full again (0 for a new client);
    ``period`` = 1 / rate. Allowed (wait 0) while ``tat`` stays within ``burst`` periods
    of ``now``; a refused request leaves ``tat`` as it was.

    Rate 2/s (period 0.5 s), burst 2, three requests at t=0: two pass, the third waits
    0.5 s (one request comes back every period):

    >>> tat = 0.0
    >>> for _ in range(3):
    ...     tat, wait = gcra(tat, 0.0, 0.5, 2)
    ...     print(tat, wait)
    0.5 0.0
    1.0 0.0
    1.0 0.5
    """
    new = max(tat, now) + period
    over = new - now - period * burst
    if over > 0:
        return tat, over
    return new, 0.0


class Limiter(Protocol):
    async def take(self, client: str) -> float:
        """0.0 when ``client``'s request may go, else the seconds to wait before retrying."""
        ...


class BucketsUnavailable(Exception):
    """The shared buckets could not be asked (Redis slow, down or refusing)."""


class SharedBuckets(Protocol):
    async def take(self, client: str, rate: float, burst: int, timeout: float) -> float:
        """As :meth:`Limiter.take`, across every replica; BucketsUnavailable when the
        answer did not come within ``timeout`` seconds."""
        ...


class RateLimiter:
    """Token buckets keyed by client, in this process (the fallback of the shared limit).

    >>> rl = RateLimiter(rate=2.0, burst=2)
    >>> [rl.take("ip1", now=0.0) for _ in range(3)]
    [0.0, 0.0, 0.5]

    A third request at t=0 must wait 0.5 s: one token comes back every 1/rate seconds.

    >>> rl.take("ip1", now=0.5), rl.take("ip2", now=0.5)
    (0.0, 0.0)

    At most ``max_clients`` buckets are kept; the least recently seen is forgotten first
    (a forgotten client starts again with a full bucket, which only errs on the generous
    side).
    """

    def __init__(self, rate: float, burst: int, max_clients: int = 100_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str, now: float) -> float:
        """Take a token: 0.0 when allowed, else the seconds to wait before retrying."""
        tokens, last = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            wait, tokens = 0.0, tokens - 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


class LocalLimiter:
    """The limit per process only (no shared store: tests with fakes, a single router)."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.buckets = RateLimiter(rate, burst)
        self.clock = clock

    async def take(self, client: str) -> float:
        return self.buckets.take(client, self.clock())


class SharedLimiter:
    """The limit across replicas, with the ``fallback`` of the module docstring."""

    def __init__(
        self,
        shared: SharedBuckets,
        rate: float,
        burst: int,
        *,
        timeout: float,
        fallback: Fallback,
        clock: Callable[[], float],
        on_degraded: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.shared = shared
        self.rate = rate
        self.burst = burst
        self.timeout = timeout
        self.fallback: Fallback = fallback
        self.clock = clock
        self.on_degraded = on_degraded
        self.local = RateLimiter(rate, burst)
        self._skip_until = -math.inf

    async def take(self, client: str) -> float:
        now = self.clock()
        if now >= self._skip_until:
            try:
                wait = await self.shared.take(client, self.rate, self.burst, self.timeout)
            except BucketsUnavailable as exc:
                if self._skip_until == -math.inf:  # once per outage
                    log.warning(
                        "shared rate limit unavailable, deciding %s for %gs: %s",
                        self.fallback,
                        RETRY_SECONDS,
                        exc,
                    )
                self._skip_until = now + RETRY_SECONDS
            else:
                self._skip_until = -math.inf
                return wait
        self.on_degraded(self.fallback)
        if self.fallback == "open":
            return 0.0
        if self.fallback == "closed":
            return max(self._skip_until - now, 1.0 / self.rate)
        return self.local.take(client, now)


def retry_after(wait: float) -> str:
    """The ``Retry-After`` header value: whole seconds, rounded up, at least 1.

    >>> retry_after(0.2), retry_after(1.0), retry_after(2.01)
    ('1', '1', '3')
    """
    return str(max(1, math.ceil(wait)))
