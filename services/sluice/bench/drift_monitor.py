"""Drift monitor throughput: prediction rows processed per second on one core, 20 features.

Two measurements, 60,000 rows each, at 1 and at 10 rows per log entry:

- ``pipeline``: raw log entries (as XREADGROUP returns them) -> decode -> windows ->
  every statistic and verdict of each closed window. The prepared entries are frozen out
  of the garbage collector's sight (``gc.freeze``): the service never holds a whole
  run's replies at once.
- ``end-to-end``: the real read loop (``Monitor``, on uvloop as ``run_app`` serves it)
  against a real redis-server: XREADGROUP, decode, windows, reports committed by the Lua
  script, predictions kept for the ground-truth join (HSET), XACK. The clock runs from
  the first read to the commit of the last full window.

Every measurement runs in a fresh process pinned to core 0; redis-server is pinned to
core 1. With ``--baseline DIR`` (a source tree of another commit, e.g. from ``git archive
HEAD services | tar -x -C DIR``) each measurement also runs that tree's code, before and
after alternating within every round, so both see the same machine load.

    uv run python -m sluice.bench.drift_monitor [--runs 5] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import inspect
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
import uvloop
from prometheus_client import CollectorRegistry

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
from sluice.drift_monitor import backends
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
WINDOW = 2000
TARGET = 20_000
CATS = ["a", "b", "c", "d", "e"]
MEASURES = [("pipeline", 1), ("pipeline", 10), ("end-to-end", 1), ("end-to-end", 10)]


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


def pipeline(registry: ModelRegistry, per_entry: int) -> float:
    """Rows per second through decode -> windows -> statistics and verdicts."""
    raw = log_entries(ROWS, per_entry)
    # The input stands in for Redis replies, which the service never holds all at once:
    # keep the collector from scanning it on every collection.
    gc.collect()
    gc.freeze()
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
    client.close()
    settings = Settings(registry=registry.root, redis_url=redis_url, window_size=WINDOW,
                        window_seconds=3600, consumer="bench", block_ms=50,
                        lease_seconds=3600)  # fmt: skip
    # the service's own client where it has one (a baseline tree may predate it)
    connect = getattr(backends, "connect", aioredis.Redis.from_url)
    # ... and its log's start, before the monitor chose it per stream
    takes_start = "start_from" in inspect.signature(backends.RedisPredictionLog).parameters
    start_from = ("0",) if takes_start else ()

    async def run() -> float:
        aio = connect(redis_url)
        state = backends.RedisStateStore(aio)
        monitor = Monitor(
            settings, log_=backends.RedisPredictionLog(aio, settings.group, "bench", *start_from),
            state=state, feedback=RedisFeedbackStore(aio, 3600, 1000),
            references=RegistryReferences(registry), metrics=Metrics(CollectorRegistry()),
        )  # fmt: skip
        await monitor.housekeeping()
        done = (ROWS // WINDOW) * WINDOW
        start = time.perf_counter()
        while committed(monitor.metrics) < ROWS // WINDOW:
            if "bench" not in monitor.owned:
                raise RuntimeError("the benchmark's monitor lost its lease")
            await monitor.step()
        elapsed = time.perf_counter() - start
        stored = (await state.rows("bench")).get("v1", 0)
        await aio.aclose()
        if stored != done:
            raise RuntimeError(f"{stored} rows committed, expected {done}")
        return done / elapsed

    return uvloop.run(run())


def committed(metrics: Metrics) -> float:
    """Windows this process committed (read from its counter: no Redis round trip)."""
    return sum(s.value for m in metrics.windows.collect() for s in m.samples
               if s.name.endswith("_total"))  # fmt: skip


def machine() -> str:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"nproc {os.cpu_count()}, {cpu}, Python {platform.python_version()}"


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def measure_here(args: argparse.Namespace) -> None:
    """One measurement in this process (the parent runs each in a fresh one)."""
    os.sched_setaffinity(0, {0})
    registry = ModelRegistry(args.registry)
    if args.measure == "pipeline":
        value = pipeline(registry, args.per_entry)
    else:
        value = end_to_end(registry, args.redis_url, args.per_entry)
    print(f"{value:.1f}")


def measure(code: Path, kind: str, per_entry: int, registry: Path, redis_url: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(code)}
    argv = [sys.executable, __file__, "--measure", kind, "--per-entry", str(per_entry),
            "--registry", str(registry), "--redis-url", redis_url]  # fmt: skip
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} with {code} failed:\n{out.stderr[-3000:]}")
    return float(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement")
    parser.add_argument(
        "--baseline", type=Path, help="a source tree whose services/ runs as 'before'"
    )
    parser.add_argument("--out", type=Path, help="default: bench/results/drift_monitor.md")
    parser.add_argument("--measure", choices=["pipeline", "end-to-end"], help=argparse.SUPPRESS)
    parser.add_argument("--per-entry", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--registry", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure_here(args)
        return
    # the parent only: a measuring child may run another tree's sluice (--baseline)
    import sluice
    from sluice.bench._common import RESULTS, redis_server

    args.out = args.out or RESULTS / "drift_monitor.md"
    codes = {"after": Path(sluice.__file__).resolve().parents[1]}
    if args.baseline:
        codes = {"before": args.baseline.resolve() / "services", **codes}
    results: dict[tuple[str, str, int], list[float]] = {}
    load_before = load()
    with tempfile.TemporaryDirectory() as tmp:
        registry = register(Path(tmp) / "registry").root
        with redis_server(Path(tmp) / "redis") as (url, pid):
            subprocess.run(["taskset", "-cp", "1", str(pid)], check=False,
                           capture_output=True)  # fmt: skip
            for run in range(args.runs):
                for kind, per_entry in MEASURES:
                    # alternate which version goes first, so neither always gets the warmer box
                    order = list(codes) if run % 2 == 0 else list(reversed(codes))
                    for name in order:
                        value = measure(codes[name], kind, per_entry, registry, url)
                        results.setdefault((name, kind, per_entry), []).append(value)
                        print(f"run {run + 1}: {name} {kind}, {per_entry}/entry: {value:,.0f}")
    report = render(results, list(codes), load_before, load(), args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)


def render(
    results: dict[tuple[str, str, int], list[float]],
    codes: list[str],
    load_before: str,
    load_after: str,
    args: argparse.Namespace,
) -> str:
    command = f"python -m sluice.bench.drift_monitor --runs {args.runs}"
    if args.baseline:
        command += f" --baseline {args.baseline}"
    lines = [
        "# Drift monitor throughput",
        "",
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- command: `{command}` (each measurement a fresh process pinned to core 0, "
        "redis-server pinned to core 1)",
        f"- machine: {machine()}; load average {load_before} before, {load_after} after "
        "(the 2 cores are shared with other engineers' work)",
        f"- model: {NUMERIC} numeric + {CATEGORICAL} categorical features, windows of {WINDOW} "
        f"rows, {ROWS:,} rows a run, median of {args.runs} runs; target >= {TARGET:,} rows/s "
        "end to end",
        "",
    ]
    head = " | ".join(f"{c} rows/s (median)" for c in codes)
    lines += [f"| what | {head} |" + (" change |" if len(codes) > 1 else "") + " runs |"]
    lines += ["| --- |" + " ---: |" * len(codes) + (" ---: |" if len(codes) > 1 else "") + " --- |"]
    for kind, per_entry in MEASURES:
        medians = [statistics.median(results[(c, kind, per_entry)]) for c in codes]
        row = f"| {kind}, {per_entry} row(s) per entry | "
        row += " | ".join(f"{m:,.0f}" for m in medians) + " |"
        if len(codes) > 1:
            row += f" {medians[-1] / medians[0]:.2f}x |"
        runs = "; ".join(
            f"{c}: " + ", ".join(f"{v:,.0f}" for v in results[(c, kind, per_entry)]) for c in codes
        )
        lines.append(row + f" {runs} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
