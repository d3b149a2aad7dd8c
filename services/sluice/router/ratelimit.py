"""A token bucket per client (API key or client IP): pure, the clock passed in.

Each client holds up to ``burst`` tokens, refilled at ``rate`` per second; a request takes
one. When none is left the answer is 429 with ``Retry-After`` = the seconds until one is.
At most ``max_clients`` buckets are kept; the least recently seen is forgotten first
(a forgotten client starts again with a full bucket, which only errs on the generous side).
"""

from __future__ import annotations

import math
from collections import OrderedDict


class RateLimiter:
    """Token buckets keyed by client.

    >>> rl = RateLimiter(rate=2.0, burst=2)
    >>> [rl.take("ip1", now=0.0) for _ in range(3)]
    [0.0, 0.0, 0.5]

    A third request at t=0 must wait 0.5 s: one token comes back every 1/rate seconds.

    >>> rl.take("ip1", now=0.5), rl.take("ip2", now=0.5)
    (0.0, 0.0)
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


def retry_after(wait: float) -> str:
    """The ``Retry-After`` header value: whole seconds, rounded up, at least 1.

    >>> retry_after(0.2), retry_after(1.0), retry_after(2.01)
    ('1', '1', '3')
    """
    return str(max(1, math.ceil(wait)))
