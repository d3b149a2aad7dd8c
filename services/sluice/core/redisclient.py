"""How the router, the drift monitor and the rollout controller connect to Redis.

redis-py's ``from_url`` retries nothing. After Redis restarts, every pooled connection is
dead, and the first command sent on each one fails although Redis is back: an admin call
answered 503, a prediction-log batch dropped, one per connection the pool held. One
immediate retry on a connection error (on a new connection) hides that from callers and
costs nothing while Redis is really down: the retry is refused just as fast. Timeouts are
not retried, so a frozen Redis still fails a call within the caller's timeout. (The
feature store's online store keeps its own client.) ``connect_cluster`` is the same for a
Redis Cluster: the prediction log and the drift monitor's state can live on one.

Commands are packed in C by hiredis (``HiredisPackingConnection``) on plain TCP; a TLS or
Unix-socket URL keeps redis-py's own connection class.
"""

from __future__ import annotations

import codecs
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.typing import EncodableT
from redis.utils import HIREDIS_AVAILABLE


def connect(url: str, **options: Any) -> aioredis.Redis:
    """An asyncio client for ``url``; ``options`` go to ``Redis.from_url``."""
    retry = Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,))
    options.setdefault("connection_class", HiredisPackingConnection)
    return aioredis.Redis.from_url(url, retry=retry, **options)


def connect_cluster(url: str, **options: Any) -> RedisCluster:
    """A Redis Cluster client that discovers every shard from the node at ``url``; retries
    like ``connect`` (a moved slot or a failed-over shard is redis-py's own retry)."""
    retry = Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,))
    client = RedisCluster.from_url(url, retry=retry, **options)
    if client.connection_kwargs.get("connection_class") is aioredis.Connection:
        # redis-py's cluster client takes no connection class (it fixes Connection; TLS
        # keeps its own): every node it discovers is made from these kwargs, the startup
        # node already was. Packing in Python cost the router's log writer 34 µs a record
        # of its 68 on a cluster (bench/results/predlog_shards.md).
        client.connection_kwargs["connection_class"] = HiredisPackingConnection
        for node in client.startup_nodes:
            node.connection_class = HiredisPackingConnection
    return client


class HiredisPackingConnection(aioredis.Connection):
    """redis-py's asyncio connection, packing commands in C with hiredis.

    redis-py's sync connections pack with hiredis when it is installed; its asyncio ones
    still pack in Python, argument by argument (redis/redis-py#4176). The drift monitor
    sends two arguments per log entry (the HSET that keeps predictions for the ground-truth
    join) and one more (XACK): packing those 3,000 arguments of a 1,000-entry batch
    took 2.2 ms in Python and takes 0.45 ms in hiredis, with the same bytes on the wire.
    The router's prediction-log XADDs (every feature) and the online store's MGETs pack
    the same way (docs/benchmarks.md: 2-3% of the router's CPU a request).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        encoder = self.encoder
        self._hiredis = (
            HIREDIS_AVAILABLE
            and codecs.lookup(encoder.encoding).name == "utf-8"
            and encoder.encoding_errors == "strict"
        )

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        name = args[0]
        if self._hiredis and isinstance(name, str) and " " not in name:
            try:
                return [hiredis.pack_command(args)]  # type: ignore[arg-type]  # stub: 1-tuple
            except TypeError:  # a value redis-py refuses: let it say why
                pass
        return super().pack_command(*args)
