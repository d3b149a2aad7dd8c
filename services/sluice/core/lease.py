"""A lease in Redis: at most one holder of a named job at a time, across processes.

Used by the drift monitor (one reader per model's prediction log) and the rollout
controller (one controller acting at a time). A lease is one key whose value is the
holder's token, set with ``SET NX PX`` and renewed or released only by a script that
first checks the token, so a holder that lost the lease (it expired while the process
was paused) can never extend or delete the new holder's.

=================  ================================================================
key                chosen by the user of the lease (``sluice:drift:{m}:lease``,
                   ``sluice:rollout:lease``); value: the holder's token
expiry             the key's TTL; a holder renews at a third of it
=================  ================================================================

A holder must treat the lease as lost as soon as a renewal fails, and a write that must
only happen under the lease checks the key in the same script (the drift monitor's
window commit does).
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisLease:
    """Acquire, renew and release leases on ``client``; keys are passed per call."""

    def __init__(self, client: aioredis.Redis | RedisCluster) -> None:
        self.client = client
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    async def acquire(self, key: str, token: str, ttl: float) -> bool:
        """Take the lease if nobody holds it; True when ``token`` holds it now."""
        return bool(await self.client.set(key, token, nx=True, px=_ms(ttl)))

    async def renew(self, key: str, token: str, ttl: float) -> bool:
        """Extend the lease by ``ttl`` if ``token`` still holds it; False if it was lost."""
        return bool(await self._renew(keys=[key], args=[token, _ms(ttl)]))

    async def release(self, key: str, token: str) -> None:
        """Give the lease up (only if ``token`` still holds it)."""
        await self._release(keys=[key], args=[token])

    async def holder(self, key: str) -> str | None:
        """The token of whoever holds the lease now, or None."""
        value = await self.client.get(key)
        return value.decode() if isinstance(value, bytes) else value


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
