"""The prediction log's writes on one Redis against a three-shard Redis Cluster: how much
of a shard's CPU each logged request costs, and how it spreads over the shards.

The router's own writer (``sluice.router.store.RedisPredictionLog``: pipelined XADD with
approximate MAXLEN, 256 records a round trip) writes ``--records`` churn records (twelve
features, one row each), spread evenly over three models whose streams hash to three
different shards, then the same records for one model alone, into streams already at
their MAXLEN (every XADD trims, as in a router that has run a while). Each case runs on a
single redis-server and on a three-primary cluster, alternated for ``--rounds`` rounds;
a last case spreads the one model's log over three streams on the cluster
(``SLUICE_ROUTER_PREDLOG_STREAMS=3``), whose hash tags fall on its three shards.
Reported: records per second (the writer is one Python process: on two cores it, not
Redis, sets the pace), the writer's CPU a record, Redis's CPU a record over every node,
the busiest node's (what bounds a deployment: a shard is one thread), and XADD's command
time from ``INFO commandstats``.

    uv run python -m sluice.bench.predlog_shards   # writes bench/results/predlog_shards.md
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from sluice.bench._common import RESULTS, redis_cluster, redis_server, tree_cpu_seconds
from sluice.bench.peers import machine
from sluice.core.predlog import PredictionRecord
from sluice.core.redisclient import connect, connect_cluster
from sluice.router.store import RedisPredictionLog
from sluice.trainer.data import generate_churn

MODELS = ("churn", "churn-eu", "churn-apac")  # their hash tags fall on three shards
MAXLEN = 10_000
FEATURES: dict[str, list[Any]] = {
    str(name): [value]
    for name, value in generate_churn(1, seed=1).iloc[0].to_dict().items()
    if name not in ("customer_id", "event_timestamp", "churned")
}
"""One customer's twelve churn features, as the router logs a one-row request."""


@dataclass
class Case:
    target: str
    models: int
    streams: int
    rate: list[float]
    writer_us: list[float]
    redis_us: list[float]
    busiest_us: list[float]
    command_us: list[float]


def record(i: int) -> PredictionRecord:
    return PredictionRecord(
        f"bench-{i}", time.time(), "v1", "primary", FEATURES, ["0"], [0.21], 1.7
    )


def node_ports(url: str, cluster: bool) -> list[int]:
    """The port of every primary at ``url``: the one Redis, or each cluster shard."""
    if not cluster:
        return [redis.Redis.from_url(url).connection_pool.connection_kwargs["port"]]
    with redis.RedisCluster.from_url(url) as client:
        return [node.port for node in client.get_primaries()]


def cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def write(
    url: str, cluster: bool, models: tuple[str, ...], records: int, streams: int = 1
) -> float:
    """Write ``records`` through the router's writer; the seconds it took. Any drop fails.

    The streams are kept between runs, at ``MAXLEN`` after the warm-up: every XADD trims,
    as in a router that has run for a while."""
    client = connect_cluster(url) if cluster else connect(url)
    drops: Counter[str] = Counter()
    written: Counter[str] = Counter()
    writer = RedisPredictionLog(
        client, maxlen=MAXLEN, buffer=records, batch=256, linger=0.0, streams=streams,
        on_written=lambda m, n: written.update({m: n}),
        on_drop=lambda _, why, n: drops.update({why: n}),
    )  # fmt: skip
    started = time.perf_counter()
    writer.start()
    for i in range(records):
        writer.write(models[i % len(models)], record(i))
    await writer.close(drain_seconds=600)
    took = time.perf_counter() - started
    await client.aclose()
    if drops or written.total() != records:
        sys.exit(f"the writer dropped {dict(drops)}, wrote {written.total()} of {records}")
    return took


def xadd_seconds(ports: list[int]) -> float:
    """XADD command time so far on these nodes (``INFO commandstats``), in seconds."""
    total = 0.0
    for port in ports:
        with redis.Redis(port=port) as client:
            stats: Any = client.info("commandstats")
            total += stats.get("cmdstat_xadd", {}).get("usec", 0) / 1e6
    return total


def measure(case: Case, url: str, pids: list[int], records: int) -> None:
    models = MODELS[: case.models]
    ports = node_ports(url, len(pids) > 1)
    before = [tree_cpu_seconds(p) for p in pids]
    commands = xadd_seconds(ports)
    mine = cpu_self()
    took = asyncio.run(write(url, len(pids) > 1, models, records, case.streams))
    writer = cpu_self() - mine
    used = [tree_cpu_seconds(p) - b for p, b in zip(pids, before, strict=True)]
    case.command_us.append((xadd_seconds(ports) - commands) / records * 1e6)
    case.rate.append(records / took)
    case.writer_us.append(writer / records * 1e6)
    case.redis_us.append(sum(used) / records * 1e6)
    case.busiest_us.append(max(used) / records * 1e6)


@contextmanager
def targets(root: Path) -> Iterator[dict[str, tuple[str, list[int]]]]:
    with ExitStack() as stack:
        url, pid = stack.enter_context(redis_server(root / "single"))
        cluster_url, pids = stack.enter_context(redis_cluster(root / "cluster"))
        yield {"one Redis": (url, [pid]), "Redis Cluster, 3 shards": (cluster_url, pids)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--records", type=int, default=60_000, choices=range(1000, 100_001), metavar="1000..100000"
    )  # below MAXLEN: every record stays countable
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "predlog_shards.md")
    args = parser.parse_args()
    cluster = "Redis Cluster, 3 shards"
    cases = [Case(t, m, 1, [], [], [], [], []) for m in (3, 1) for t in ("one Redis", cluster)]
    cases.append(Case(cluster, 1, 3, [], [], [], [], []))
    with tempfile.TemporaryDirectory() as tmp, targets(Path(tmp)) as where:
        for url, pids in where.values():  # every stream at MAXLEN: each XADD trims
            asyncio.run(write(url, len(pids) > 1, MODELS, MAXLEN * len(MODELS)))
        asyncio.run(write(where[cluster][0], True, ("churn",), MAXLEN * 3, streams=3))
        for n in range(args.rounds):
            order = cases if n % 2 == 0 else cases[::-1]
            for case in order:
                url, pids = where[case.target]
                measure(case, url, pids, args.records)
            print(f"round {n + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    command = "uv run python -m sluice.bench.predlog_shards " + " ".join(sys.argv[1:])
    text = render(cases, args, command.strip())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


def render(cases: list[Case], args: argparse.Namespace, command: str) -> str:
    med: Callable[[list[float]], float] = statistics.median
    lines = [
        "# The prediction log on one Redis and on a three-shard Redis Cluster",
        "",
        f"{datetime.now(UTC):%Y-%m-%d}, {machine()}. `{command}`: {args.records:,} records a "
        f"run (churn, every feature, one row), medians of {args.rounds} rounds, the targets "
        "alternated. CPU is utime+stime over the run divided by records; command time is "
        "Redis's own `INFO commandstats` for XADD, a part of its CPU.",
        "",
        "| models | streams a model | Redis | records/s | writer CPU µs/record"
        " | Redis CPU µs/record, all nodes | busiest node µs/record"
        " | XADD command time µs/record |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in cases:
        lines.append(
            f"| {c.models} | {c.streams} | {c.target} | {med(c.rate):,.0f} | "
            f"{med(c.writer_us):.1f} | {med(c.redis_us):.1f} | {med(c.busiest_us):.1f} | "
            f"{med(c.command_us):.1f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
