"""How the router, the drift monitor and the rollout controller connect to Redis.

redis-py's ``from_url`` retries nothing. After Redis restarts, every pooled connection is
dead, and the first command sent on each one fails although Redis is back: an admin call
answered 503, a prediction-log batch dropped, one per connection the pool held. One
immediate retry on a connection error (on a new connection) hides that from callers and
costs nothing while Redis is really down: the retry is refused just as fast. Timeouts are
not retried, so a frozen Redis still fails a call within the caller's timeout. (The
feature store's online store keeps its own client: it speaks Redis Cluster too.)
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError


def connect(url: str, **options: Any) -> aioredis.Redis:
    """An asyncio client for ``url``; ``options`` go to ``Redis.from_url``."""
    retry = Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,))
    return aioredis.Redis.from_url(url, retry=retry, **options)
