"""Drift monitor throughput: prediction rows processed per second on one core, 20 features.

Two measurements, each the median of RUNS runs:

- ``pipeline``: raw log entries (as XREADGROUP returns them) -> decode -> windows ->
  every statistic and verdict of each closed window. Pinned to one core. The prepared
  entries are frozen out of the garbage collector's sight (``gc.freeze``): the service
  never holds a whole run's replies at once.
- ``end-to-end``: the real read loop (``Monitor``) against a real redis-server on the
  other core: XREADGROUP, decode, windows, reports committed, predictions kept for the
  ground-truth join, XACK. The clock runs from the first read to the last commit.

Run: ``uv run python bench/drift_monitor.py``; writes bench/results/drift_monitor.md.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import redis
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.procs import redis_server

from sluice.core.predlog import PredictionRecord, encode, stream_key
from sluice.core.registry import (
    Bins,
    CategoricalProfile,
    DataInfo,
    FeatureSpec,
    ModelCard,
    ModelRegistry,
    NumericProfile,
    PredictionProfile,
    Profile,
)
from sluice.drift_monitor.backends import RedisPredictionLog, RedisStateStore
from sluice.drift_monitor.batch import decode_batch
from sluice.drift_monitor.evaluate import evaluate_version, prepare
from sluice.drift_monitor.feedback import RedisFeedbackStore
from sluice.drift_monitor.metrics import Metrics
from sluice.drift_monitor.monitor import Monitor
from sluice.drift_monitor.references import RegistryReferences
from sluice.drift_monitor.settings import Settings
from sluice.drift_monitor.verdict import Policy
from sluice.drift_monitor.windows import ModelWindows, WindowSpec

NUMERIC, CATEGORICAL = 14, 6
ROWS = 60_000
RUNS = 3
WINDOW = 2000
CATS = ["a", "b", "c", "d", "e"]


def features() -> tuple[list[str], list[str]]:
    return [f"n{i}" for i in range(NUMERIC)], [f"c{i}" for i in range(CATEGORICAL)]


def register(root: Path) -> ModelRegistry:
    numeric, categorical = features()
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, 20_000)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, 11)))
    bins = Bins(edges=edges.tolist(), counts=np.histogram(ref, edges)[0].tolist())
    scores = np.sort(rng.uniform(0, 1, 5000))
    sedges = np.unique(np.quantile(scores, np.linspace(0, 1, 11)))
    profile = Profile(
        rows=20_000,
        features=[
            *(NumericProfile(name=n, bins=bins, sample=np.sort(ref[:5000]).tolist(), mean=0.0,
                             std=1.0, missing=0) for n in numeric),
            *(CategoricalProfile(name=c, frequencies=dict.fromkeys(CATS, 4000), missing=0)
              for c in categorical),
        ],
        prediction=PredictionProfile(
            score_name="p",
            bins=Bins(edges=sedges.tolist(), counts=np.histogram(scores, sedges)[0].tolist()),
            sample=scores.tolist(), label_frequencies={"0": 2500, "1": 2500},
        ),
    )  # fmt: skip
    card = ModelCard(
        model="bench", version="v1", created_at="2026-11-22T00:00:00Z", algorithm="logreg",
        hyperparameters={}, label="y", classes=["0", "1"],
        features=[FeatureSpec(name=n, kind="numeric", dtype="float64") for n in numeric]
        + [FeatureSpec(name=c, kind="categorical", dtype="string") for c in categorical],
        metrics={}, data=DataInfo(fingerprint="0" * 64, rows=1, train_rows=1, test_rows=0),
        packages={}, parity_max_abs_diff=0.0,
    )  # fmt: skip
    registry = ModelRegistry(root)
    registry.register(card, profile, b"onnx")
    return registry


def log_entries(rows: int, per_entry: int) -> list[tuple[str, dict[bytes, bytes]]]:
    numeric, categorical = features()
    rng = np.random.default_rng(1)
    x = {n: rng.normal(0, 1, rows).round(4).tolist() for n in numeric}
    x.update({c: rng.choice(CATS, rows).tolist() for c in categorical})
    scores = rng.uniform(0, 1, rows).round(4).tolist()
    labels = ["1" if s > 0.5 else "0" for s in scores]
    out = []
    for i, start in enumerate(range(0, rows, per_entry)):
        end = start + per_entry
        record = PredictionRecord(
            request_id=f"r{i}", timestamp=time.time(), version="v1", role="primary",
            features={k: v[start:end] for k, v in x.items()}, labels=labels[start:end],
            scores=scores[start:end], latency_ms=1.0,
        )  # fmt: skip
        out.append((f"{1000 + i}-0", encode(record)))
    return out


def pipeline(registry: ModelRegistry, raw: list[tuple[str, dict[bytes, bytes]]]) -> float:
    """Rows per second through decode -> windows -> statistics and verdicts."""
    ref = prepare(registry.profile("bench", "v1"))
    windows = ModelWindows(WindowSpec(WINDOW, 3600, WINDOW * 5))
    policy = Policy()
    start = time.perf_counter()
    for i in range(0, len(raw), 1000):
        batch = decode_batch(raw[i : i + 1000], ref.kinds)  # type: ignore[arg-type]
        for window in windows.feed(batch):
            evaluate_version("bench", window, ref, policy, 0.0)
            windows.committed(window)
    return ROWS / (time.perf_counter() - start)


def end_to_end(registry: ModelRegistry, redis_url: str, per_entry: int) -> float:
    """Rows per second through the real read loop against a real Redis."""
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    pipe = client.pipeline(transaction=False)
    for _, fields in log_entries(ROWS, per_entry):
        pipe.xadd(stream_key("bench"), fields)  # type: ignore[arg-type]
    pipe.execute()
    settings = Settings(registry=registry.root, redis_url=redis_url, window_size=WINDOW,
                        window_seconds=3600, consumer="bench", block_ms=50,
                        lease_seconds=3600)  # fmt: skip

    async def run() -> float:
        aio = aioredis.Redis.from_url(redis_url)
        state = RedisStateStore(aio)
        monitor = Monitor(
            settings, log_=RedisPredictionLog(aio, settings.group, "bench", "0"), state=state,
            feedback=RedisFeedbackStore(aio, 3600, 1000), references=RegistryReferences(registry),
            metrics=Metrics(CollectorRegistry()),
        )  # fmt: skip
        await monitor.housekeeping()
        start = time.perf_counter()
        done = (ROWS // WINDOW) * WINDOW
        while (await state.rows("bench")).get("v1", 0) < done:
            if "bench" not in monitor.owned:
                raise RuntimeError("the benchmark's monitor lost its lease")
            await monitor.step()
        elapsed = time.perf_counter() - start
        await aio.aclose()
        return done / elapsed

    try:
        return asyncio.run(run())
    finally:
        client.close()


def machine() -> str:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return f"nproc {os.cpu_count()}, {cpu}, load average {load}, Python {platform.python_version()}"


def main() -> None:
    os.sched_setaffinity(0, {0})
    results: dict[str, list[float]] = {}
    before = machine()
    with tempfile.TemporaryDirectory() as tmp:
        registry = register(Path(tmp) / "registry")
        for per_entry in (1, 10):
            raw = log_entries(ROWS, per_entry)
            # The input stands in for Redis replies, which the service never holds all at
            # once: keep the collector from scanning it on every collection.
            gc.collect()
            gc.freeze()
            results[f"pipeline, {per_entry} row(s) per entry"] = [
                pipeline(registry, raw) for _ in range(RUNS)
            ]
            del raw
            gc.unfreeze()
            gc.collect()
        with redis_server(Path(tmp) / "redis") as (url, proc):
            if len(os.sched_getaffinity(0)) and (os.cpu_count() or 1) > 1:
                subprocess.run(["taskset", "-cp", "1", str(proc.popen.pid)], check=False,
                               capture_output=True)  # fmt: skip
            for per_entry in (1, 10):
                results[f"end-to-end with Redis, {per_entry} row(s) per entry"] = [
                    end_to_end(registry, url, per_entry) for _ in range(RUNS)
                ]
    after = machine()
    lines = [
        "# Drift monitor throughput",
        "",
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "- command: `uv run python bench/drift_monitor.py` (the process pinned to core 0, "
        "redis-server to core 1)",
        f"- machine before: {before}",
        f"- machine after: {after} (the 2 cores are shared with other engineers' work)",
        f"- model: {NUMERIC} numeric + {CATEGORICAL} categorical features, windows of {WINDOW} "
        f"rows, {ROWS:,} rows a run, median of {RUNS} runs; target >= 20,000 rows/s",
        "",
        "| what | rows/s (median) | runs |",
        "| --- | ---: | --- |",
    ]
    for name, values in results.items():
        runs = ", ".join(f"{v:,.0f}" for v in values)
        lines.append(f"| {name} | {statistics.median(values):,.0f} | {runs} |")
    text = "\n".join(lines) + "\n"
    out = Path(__file__).parent / "results" / "drift_monitor.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
