"""Which version answers a request, and which gets a copy: pure functions of plain values.

Every request has a routing key (the entity id, else the ``x-sluice-key`` header, else the
request id). The key is hashed to one of 10,000 buckets; the candidate of a canary serves
the buckets below ``weight * 100``. A key's bucket never changes, so a key that moved to
the candidate stays there while the weight only grows (monotonic stickiness), and it moves
with the *version*, not with a pod.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sluice.core.routes import Route

BUCKETS = 10_000


def bucket(key: str) -> int:
    """The key's bucket in 0..9999: the first 8 bytes of BLAKE2b, big-endian, mod 10,000.

    Stable across processes and versions of Python (unlike ``hash()``).

    >>> bucket("C1"), bucket("C2"), bucket("customer-42")
    (4245, 44, 1354)

    With a canary weight of 30 the candidate serves buckets 0..2999: ``C2`` and
    ``customer-42`` go to the candidate, ``C1`` stays on stable until the weight passes 42.
    """
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def in_canary(bucket_: int, weight: int) -> bool:
    """Whether the candidate answers this bucket at ``weight`` percent.

    >>> in_canary(2999, 30), in_canary(3000, 30), in_canary(0, 0), in_canary(9999, 100)
    (True, False, False, True)
    """
    return bucket_ < weight * 100


def mirrored(bucket_: int, route: Route) -> bool:
    """Whether a request stable answers is also copied to the candidate.

    Shadow mode mirrors the buckets below ``mirror * 100``. A canary mirrors the
    ``mirror * 100`` buckets right above the canary's own, so the copies are a sticky
    ``mirror`` percent of all traffic, taken from what stable answers (capped by it).

    >>> r = Route(model="m", upstreams={}, stable="a", candidate="b", mode="canary",
    ...           weight=10, mirror_percent=5)
    >>> mirrored(999, r), mirrored(1000, r), mirrored(1499, r), mirrored(1500, r)
    (False, True, True, False)
    """
    share = route.mirror
    if share <= 0 or route.candidate is None:
        return False
    if route.mode == "shadow":
        return bucket_ < share * 100
    if route.mode == "canary":
        low = route.weight * 100
        return low <= bucket_ < low + share * 100
    return False


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one request goes."""

    primary: str
    """The version asked first; its answer is the user's."""
    fallback: str | None = None
    """Asked instead when ``primary`` fails (stable behind a canary's candidate)."""
    shadow: str | None = None
    """Receives a copy; its answer is only compared."""
    pinned: bool = False
    """The caller chose the version with the ``x-sluice-version`` header."""

    def targets(self) -> tuple[str, ...]:
        """Every version this request may reach (its features are looked up once).

        >>> Decision("b", fallback="a").targets()
        ('b', 'a')
        """
        out = [self.primary]
        for extra in (self.fallback, self.shadow):
            if extra is not None and extra not in out:
                out.append(extra)
        return tuple(out)


def decide(route: Route, bucket_: int, pin: str | None = None) -> Decision:
    """The decision for a request in ``bucket_``; ``pin`` must be a version of the route.

    >>> r = Route(model="m", upstreams={}, stable="v1", candidate="v2", mode="canary", weight=30)
    >>> decide(r, 2999), decide(r, 3000)
    (Decision(primary='v2', fallback='v1', shadow=None, pinned=False), \
Decision(primary='v1', fallback=None, shadow=None, pinned=False))
    >>> decide(r, 3000, pin="v2").primary
    'v2'
    """
    if pin is not None:
        return Decision(pin, pinned=True)
    candidate = route.candidate
    if candidate is None or route.mode == "bluegreen":
        return Decision(route.stable)
    if route.mode == "canary" and in_canary(bucket_, route.weight):
        return Decision(candidate, fallback=route.stable)
    return Decision(route.stable, shadow=candidate if mirrored(bucket_, route) else None)
