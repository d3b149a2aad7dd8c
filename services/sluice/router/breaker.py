"""A circuit breaker per version: a pure state machine, the clock passed in.

``closed``: calls go through; ``threshold`` failures in a row open it.
``open``: calls are refused (the router answers from stable, or skips the mirror) until
``cooldown`` seconds have passed, then one probe call is let through (``half_open``).
``half_open``: the probe's success closes the breaker, its failure opens it again. A probe
that never reports (cancelled) is replaced by another after a further ``cooldown``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

State = Literal["closed", "open", "half_open"]


@dataclass(slots=True)
class Breaker:
    """One version's breaker.

    >>> b = Breaker(threshold=2, cooldown=5.0)
    >>> b.record(False, now=0.0); b.record(False, now=1.0); b.state
    'open'
    >>> b.allow(now=3.0), b.allow(now=6.0), b.allow(now=6.1)
    (False, True, False)
    >>> b.record(True, now=6.2); b.state
    'closed'
    """

    threshold: int = 5
    cooldown: float = 5.0
    state: State = "closed"
    failures: int = 0
    since: float = 0.0
    """When the breaker last opened, or when its probe started."""

    def allow(self, now: float) -> bool:
        """Whether a call may go out now (a True in ``open`` starts the probe)."""
        if self.state == "closed":
            return True
        if now - self.since < self.cooldown:
            return False
        self.state, self.since = "half_open", now
        return True

    def record(self, ok: bool, now: float) -> None:
        """Report a call's outcome."""
        if ok:
            self.state, self.failures = "closed", 0
            return
        self.failures += 1
        if self.state == "half_open" or self.failures >= self.threshold:
            self.state, self.since = "open", now

    @property
    def is_open(self) -> bool:
        return self.state != "closed"
