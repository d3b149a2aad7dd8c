"""Our Redis connections pack commands with hiredis: same bytes, same errors."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.exceptions import DataError

from sluice.core.redisclient import HiredisPackingConnection, connect

COMMANDS = [
    ("HSET", "sluice:drift:{churn}:pred:7", "r1", b"v1\x1f{}", "é/2", b"\x00\xff"),
    ("XACK", "sluice:predlog:{churn}", "group", *[f"1700000000000-{i}" for i in range(2000)]),
    ("EVALSHA", "abc", 7, "k", -3, 1.5, 0.1, 2**70),
    ("CONFIG GET", "maxmemory"),  # a two-word name: redis-py splits it
    ("SET", "k", memoryview(b"a view")),
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: str(a[0]))
def test_commands_are_packed_to_the_same_bytes_as_redis_py_does(args: tuple[object, ...]) -> None:
    ours = b"".join(HiredisPackingConnection().pack_command(*args))  # type: ignore[arg-type]
    theirs = b"".join(aioredis.Connection().pack_command(*args))  # type: ignore[arg-type]
    assert ours == theirs


@pytest.mark.parametrize("bad", [None, True, object()])
def test_a_value_redis_cannot_store_is_refused_as_before(bad: object) -> None:
    with pytest.raises(DataError, match="Invalid input of type"):
        HiredisPackingConnection().pack_command("SET", "k", bad)  # type: ignore[arg-type]


def test_the_client_uses_it_for_plain_tcp_and_keeps_redis_py_classes_otherwise() -> None:
    plain = connect("redis://127.0.0.1:1/0").connection_pool.connection_class
    tls = connect("rediss://127.0.0.1:1/0").connection_pool.connection_class
    assert plain is HiredisPackingConnection
    assert tls is aioredis.SSLConnection
