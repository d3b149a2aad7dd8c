"""Traffic tallies: what every router replica counts per model, version and second, and
what the rollout controller sums over a window. The contract between the two.

The controller judges a candidate on the traffic of *every* router replica in the same
window, without Prometheus (the local stack has none): each router adds its counts to
one Redis hash per model and second, a few times a second; the controller reads the
seconds of a window and adds them up.

Key ``sluice:tally:{<model>}:<unix second>`` (a hash, hash-tagged per model for Redis
Cluster), expiring after the router's ``tally_retention_seconds``. Fields are
``<version>|<counter>``:

==========  =======================================================================
``n``       primary calls the version was asked to answer, whatever came of them
``ok``      of those, answered 2xx
``c4``      answered 4xx: the client's mistake, never the version's failure
``err``     the version's failures: 5xx, timeout, unreachable, breaker open. A
            candidate that stable had to stand in for (the router's fallback) counts
            here although the user got a 200
``ms``      sum of the latency of ``ok`` calls, milliseconds; ``ms2`` sum of squares
``b<i>``    ``ok`` calls whose latency was at most ``BUCKETS_MS[i]`` and above the
            bucket before (``b<len(BUCKETS_MS)>``: above the last bound)
``rows``    rows answered (a batch is several); ``s`` / ``s2`` sum and sum of squares
            of their scores (positive-class or top probability, as the prediction log)
``sh``      shadow rows compared with stable's answer (the version is the candidate);
            ``sha`` rows whose labels agreed; ``shd`` sum of |score difference|
``shf``     shadow rows whose call to the candidate failed
==========  =======================================================================

Counts are integers (HINCRBY), sums floats (HINCRBYFLOAT). A router that cannot reach
Redis keeps its counts (bounded by ``max_pending`` seconds) and adds them to the seconds
they belong to once Redis answers again, so a window read late is still complete.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Callable, Iterable, Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

BUCKETS_MS = (
    0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500,
    2500, 5000, 10000,
)  # fmt: skip
FLOATS = frozenset(("ms", "ms2", "s", "s2", "shd"))

Counts = dict[str, float]
"""One version's counters (field name without the version) over some seconds."""


def tally_key(model: str, second: int) -> str:
    """``tally_key("churn", 1700000000)`` -> ``sluice:tally:{churn}:1700000000``."""
    return f"sluice:tally:{{{model}}}:{second}"


def bucket_of(ms: float) -> int:
    """The histogram bucket of a latency: the first bound it does not exceed.

    >>> bucket_of(0.2), bucket_of(1), bucket_of(1.1), bucket_of(99999)
    (0, 1, 2, 23)
    """
    return bisect.bisect_left(BUCKETS_MS, ms)


class Tally:
    """The counts a router has not written yet, per (model, second). Never blocks."""

    def __init__(self, clock: Callable[[], float] = time.time, max_pending: int = 600) -> None:
        self.clock = clock
        self.max_pending = max_pending
        self.pending: dict[tuple[str, int], dict[str, float]] = {}
        self.dropped = 0
        """Seconds of counts given up because Redis stayed away too long."""

    def _fields(self, model: str) -> dict[str, float]:
        key = (model, int(self.clock()))
        found = self.pending.get(key)
        if found is None:
            found = self.pending[key] = {}
        return found

    def answered(self, model: str, version: str, seconds: float, scores: Sequence[float]) -> None:
        """A 2xx answer of ``version`` that took ``seconds``; ``scores`` one per row."""
        f = self._fields(model)
        ms = seconds * 1000.0
        for name, value in (
            ("n", 1), ("ok", 1), ("ms", ms), ("ms2", ms * ms), (f"b{bucket_of(ms)}", 1),
            ("rows", len(scores)), ("s", sum(scores)), ("s2", sum(s * s for s in scores)),
        ):  # fmt: skip
            key = f"{version}|{name}"
            f[key] = f.get(key, 0) + value

    def client_error(self, model: str, version: str) -> None:
        """``version`` answered 4xx: the client's mistake."""
        self._add(model, version, ("n", 1), ("c4", 1))

    def failed(self, model: str, version: str) -> None:
        """``version`` failed the call (or its breaker kept it from being asked)."""
        self._add(model, version, ("n", 1), ("err", 1))

    def shadow(self, model: str, candidate: str, rows: int, agreed: int, abs_diff: float) -> None:
        """Shadow rows compared: how many agreed and the sum of |score difference|."""
        self._add(model, candidate, ("sh", rows), ("sha", agreed), ("shd", abs_diff))

    def shadow_failed(self, model: str, candidate: str, rows: int) -> None:
        self._add(model, candidate, ("shf", rows))

    def _add(self, model: str, version: str, *pairs: tuple[str, float]) -> None:
        f = self._fields(model)
        for name, value in pairs:
            key = f"{version}|{name}"
            f[key] = f.get(key, 0) + value

    def take(self) -> dict[tuple[str, int], dict[str, float]]:
        """Everything pending; the tally starts empty again."""
        out, self.pending = self.pending, {}
        return out

    def putback(self, batch: dict[tuple[str, int], dict[str, float]]) -> None:
        """Counts that could not be written go back (merged with newer ones); the oldest
        seconds beyond ``max_pending`` are dropped and counted."""
        for key, fields in batch.items():
            mine = self.pending.setdefault(key, {})
            for name, value in fields.items():
                mine[name] = mine.get(name, 0) + value
        if len(self.pending) > self.max_pending:
            for key in sorted(self.pending, key=lambda k: k[1])[: -self.max_pending]:
                del self.pending[key]
                self.dropped += 1


class RedisTallyWriter:
    """Adds a :class:`Tally`'s pending counts to Redis every ``interval`` seconds."""

    def __init__(
        self, client: aioredis.Redis, tally: Tally, *, interval: float, retention: int
    ) -> None:
        self.client = client
        self.tally = tally
        self.interval = interval
        self.retention = retention
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tally-writer")

    async def close(self) -> None:
        if self._task is not None:
            while not self._task.done():  # a cancel can be lost in a racing wait (3.11)
                self._task.cancel()
                await asyncio.wait([self._task], timeout=1.0)
        await self.flush()  # the last counts, once

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> bool:
        batch = self.tally.take()
        if not batch:
            return True
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for (model, second), fields in batch.items():
                    key = tally_key(model, second)
                    for name, value in fields.items():
                        if name.rsplit("|", 1)[1] in FLOATS:
                            pipe.hincrbyfloat(key, name, value)
                        else:
                            pipe.hincrby(key, name, int(value))
                    pipe.expire(key, self.retention)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self.tally.putback(batch)
            if not self._failing:
                log.warning("traffic tallies not written, kept for later: %s", exc)
            self._failing = True
            return False
        if self._failing:
            log.info("traffic tallies written again")
            self._failing = False
        return True


async def read_window(
    client: aioredis.Redis, model: str, start: float, end: float
) -> dict[str, Counts]:
    """Every version's counts over the whole seconds in ``[start, end)``, summed."""
    seconds = range(int(start), int(end))
    if not seconds:
        return {}
    async with client.pipeline(transaction=False) as pipe:
        for second in seconds:
            pipe.hgetall(tally_key(model, second))
        hashes = await pipe.execute()
    return add_up(hashes)


def add_up(hashes: Iterable[dict[bytes, bytes]]) -> dict[str, Counts]:
    """Sum raw per-second hashes into counts per version.

    >>> add_up([{b"v1|n": b"2", b"v1|ms": b"3.5"}, {b"v1|n": b"1", b"v2|err": b"1"}])
    {'v1': {'n': 3.0, 'ms': 3.5}, 'v2': {'err': 1.0}}
    """
    out: dict[str, Counts] = {}
    for raw in hashes:
        for field, value in raw.items():
            version, _, name = field.decode().partition("|")
            counts = out.setdefault(version, {})
            counts[name] = counts.get(name, 0.0) + float(value)
    return out
