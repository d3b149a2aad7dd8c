"""Benchmark the model server against a bare onnxruntime call and a bare uvicorn endpoint.

Needs: `wrk` on PATH (Debian: `apt-get update && apt-get install -y wrk`) and the project's
environment (`uv sync`). Installs nothing. Trains a churn model with the trainer into a
temporary registry, then, in one run:

- bare onnxruntime: ``session.run`` in-process, 1 and 32 rows (p50/p99 of 3000 calls);
- bare uvicorn: a minimal ASGI "hello" app under the same uvicorn settings;
- the model server, one uvicorn worker (uvloop, httptools, no access log), with the
  inference on the event loop (``direct``), in a thread pool (``thread``), and with
  adaptive batching (``batching``: concurrent requests under 64 rows gathered into one
  onnxruntime call, no added wait):
  1 and 32 rows at concurrency 1 (latency), 1/32/128/256 rows at concurrency 16 and 64
  (throughput), each with wrk for ``--duration`` seconds, ``--repeat`` rounds; the table
  shows medians. All three servers run at once and wrk visits them in turn, round after
  round, so they see the same background load: the machine is shared.

    uv run python -m sluice.bench.model_server            # writes bench/results/model_server.md
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from sluice.bench._common import (
    RESULTS,
    WRK_SCRIPT,
    free_port,
    need,
    parse_wrk,
    serving,
    tree_cpu_seconds,
)

HELLO_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"hello":"world"}'})
"""
SCENARIOS = ((1, 1), (32, 1), (1, 16), (1, 64), (32, 16), (128, 16), (256, 16))
"""(rows per request, concurrency)"""
TARGET_P50_MS = 0.35
TARGET_RPS_64 = 3000


@dataclass
class Result:
    name: str
    rows: int
    concurrency: int
    p50_ms: float
    p99_ms: float
    rps: float
    cpu_us: float | None = None
    """Server CPU time (user + system) per request: robust to other load on the machine."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    parser.add_argument("--repeat", type=int, default=3, help="wrk runs per scenario")
    parser.add_argument("--train-rows", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=RESULTS / "model_server.md")
    args = parser.parse_args()
    need("wrk")
    command = shlex.join(["python", "-m", "sluice.bench.model_server", *sys.argv[1:]])
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp:
        work = Path(tmp)
        registry = train(work / "registry", args.train_rows)
        bodies = write_bodies(work, registry)
        script = work / "post.lua"
        script.write_text(WRK_SCRIPT)
        results = [*bare_onnxruntime(registry)]
        with (
            hello_server(work) as (hello_url, hello_pid),
            model_server(work, registry, "direct") as (direct_url, direct_pid),
            model_server(work, registry, "thread") as (thread_url, thread_pid),
            model_server(work, registry, "direct", batch=64) as (batch_url, batch_pid),
        ):
            hello = Target("bare uvicorn hello", hello_url, hello_pid)
            servers = [
                Target("model server (direct)", f"{direct_url}/v2/models/churn/infer", direct_pid),
                Target("model server (thread)", f"{thread_url}/v2/models/churn/infer", thread_pid),
                Target("model server (batching)", f"{batch_url}/v2/models/churn/infer", batch_pid),
            ]
            for rows, concurrency in SCENARIOS:
                targets = [hello, *servers] if rows == 1 else servers
                results += measure(targets, bodies[rows], script, rows, concurrency, args)
    load_after = os.getloadavg()
    report = render(results, command, load_before, load_after, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)


def train(root: Path, rows: int) -> Path:
    from sluice.core.registry import ModelRegistry
    from sluice.trainer.data import generate_churn
    from sluice.trainer.service import train_and_register

    table = generate_churn(rows, seed=7)
    train_and_register(table, model="churn", version="v1", registry=ModelRegistry(root))
    return root


def sample_rows(registry: Path, rows: int) -> pd.DataFrame:
    from sluice.core.registry import ModelRegistry
    from sluice.trainer.data import generate_churn

    card = ModelRegistry(registry).card("churn", "v1")
    return generate_churn(max(rows, 2), seed=11).head(rows)[[f.name for f in card.features]]


def write_bodies(work: Path, registry: Path) -> dict[int, Path]:
    """V2 infer bodies of each scenario's rows, as a client holding a DataFrame sends them."""
    paths = {}
    for rows in sorted({rows for rows, _ in SCENARIOS}):
        frame = sample_rows(registry, rows)
        inputs = []
        for name in frame.columns:
            column = frame[name]
            data: list[Any]
            if pd.api.types.is_integer_dtype(column):
                datatype, data = "INT64", column.astype("int64").tolist()
            elif pd.api.types.is_float_dtype(column):
                datatype, data = "FP64", column.astype("float64").tolist()
            else:
                datatype, data = "BYTES", column.astype(str).tolist()
            inputs.append({"name": name, "shape": [rows, 1], "datatype": datatype, "data": data})
        paths[rows] = work / f"body-{rows}.json"
        paths[rows].write_bytes(orjson.dumps({"inputs": inputs}))
    return paths


def bare_onnxruntime(registry: Path) -> Iterator[Result]:
    """session.run alone, with the feed the server would build, on this process's thread."""
    import onnxruntime as ort

    from sluice.model_server.backends import OnnxRuntime

    runtime = OnnxRuntime(registry / "churn" / "v1" / "model.onnx")
    for rows in (1, 32):
        frame = sample_rows(registry, rows)
        feed = {
            name: (
                frame[name].to_numpy(dtype=np.float64).reshape(-1, 1)
                if runtime.input_types[name].kind == "f"
                else frame[name].astype(str).to_numpy(dtype=object).reshape(-1, 1)
            )
            for name in frame.columns
        }
        for _ in range(200):
            runtime.run(feed)
        times = []
        for _ in range(3000):
            start = time.perf_counter()
            runtime.run(feed)
            times.append(time.perf_counter() - start)
        ms = np.array(times) * 1000
        p50, p99 = float(np.percentile(ms, 50)), float(np.percentile(ms, 99))
        yield Result(f"bare onnxruntime {ort.__version__}", rows, 1, p50, p99, 1000 / p50)


@contextmanager
def hello_server(work: Path) -> Iterator[tuple[str, int]]:
    (work / "hello.py").write_text(HELLO_APP)
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "hello:app", "--app-dir", str(work),
            "--port", str(port), "--loop", "uvloop", "--http", "httptools",
            "--no-access-log", "--log-level", "warning", "--workers", "1"]  # fmt: skip
    with serving(argv, f"http://127.0.0.1:{port}", "/", {}) as served:
        yield served


@contextmanager
def model_server(
    work: Path, registry: Path, mode: str, batch: int = 0, loop: str | None = None, **more: str
) -> Iterator[tuple[str, int]]:
    """``sluice serve model-server`` on ``loop``, else on the service's default loop;
    ``more`` environment variables on top."""
    port = free_port()
    sluice = Path(sys.executable).with_name("sluice")
    argv = [str(sluice), "serve", "model-server", "--registry", str(registry),
            "--model", "churn", "--version", "v1", "--port", str(port)]  # fmt: skip
    env = {
        "SLUICE_MODEL_SERVER_INFERENCE_MODE": mode,
        "SLUICE_MODEL_SERVER_BATCH_MAX_ROWS": str(batch),
        "SLUICE_MODEL_SERVER_LOG_LEVEL": "WARNING",
    }
    if loop is not None:
        env["SLUICE_MODEL_SERVER_EVENT_LOOP"] = loop
    env.update(more)
    log = work / f"{mode}-{batch}-{loop or 'default'}-{port}.log"
    with serving(argv, f"http://127.0.0.1:{port}", "/readyz", env, log) as served:
        yield served


@dataclass
class Target:
    name: str
    url: str
    pid: int


def measure(
    targets: list[Target], body: Path, script: Path, rows: int, concurrency: int,
    args: argparse.Namespace,
) -> list[Result]:  # fmt: skip
    """Run wrk against each target in turn, ``--repeat`` rounds: the targets share the
    machine's varying load alike, so their ratios hold even when the absolutes move."""
    runs: dict[str, list[tuple[float, float, float]]] = {t.name: [] for t in targets}
    cpu: dict[str, list[float]] = {t.name: [] for t in targets}
    for _ in range(args.repeat):
        for target in targets:
            cpu_before = tree_cpu_seconds(target.pid)
            out = subprocess.run(
                ["wrk", "-t1", f"-c{concurrency}", f"-d{args.duration}s", "--timeout", "10s",
                 "--latency", "-s", str(script), target.url],
                env={**os.environ, "SLUICE_BENCH_BODY": str(body)},
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            if "Non-2xx" in out or re.search(r"Socket errors: connect [1-9]|read [1-9]", out):
                raise RuntimeError(f"{target.name}: wrk saw errors:\n{out}")
            runs[target.name].append(parse_wrk(out))
            requests = re.search(r"^\s+(\d+) requests in", out, re.MULTILINE)
            if requests:
                used = tree_cpu_seconds(target.pid) - cpu_before
                cpu[target.name].append(used / int(requests.group(1)) * 1e6)
    results = []
    for target in targets:
        p50, p99, rps = (statistics.median(r[i] for r in runs[target.name]) for i in range(3))
        cpu_us = statistics.median(cpu[target.name]) if cpu[target.name] else None
        print(f"{target.name:28} rows={rows:<4} c={concurrency:<3} p50={p50:.3f}ms "
              f"p99={p99:.3f}ms rps={rps:,.0f} cpu={cpu_us or 0:.0f}us", flush=True)  # fmt: skip
        results.append(Result(target.name, rows, concurrency, p50, p99, rps, cpu_us))
    return results


def render(
    results: list[Result],
    command: str,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
    args: argparse.Namespace,
) -> str:
    def find(name: str, rows: int, concurrency: int) -> Result | None:
        return next(
            (r for r in results
             if r.name.startswith(name) and r.rows == rows and r.concurrency == concurrency),
            None,
        )  # fmt: skip

    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown",
    )  # fmt: skip
    lines = [
        "# Model server benchmark",
        "",
        f"- date: {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"- machine: `nproc` = {os.cpu_count()}, CPU: {cpu}, Python {platform.python_version()}",
        f"- load average before / after (1, 5, 15 min): {fmt_load(load_before)} / "
        f"{fmt_load(load_after)} (other engineers share these cores)",
        f"- command: `{command}` (wrk -t1, {args.duration}s per run, median of "
        f"{args.repeat} runs; one uvicorn worker, uvloop, httptools, no access log)",
        "- model: churn v1, histogram gradient boosting trained by the trainer on "
        f"{args.train_rows} generated rows; 12 inputs (8 double, 4 string)",
        "",
        "Server CPU is the user + system time the server process spent per request (from",
        "/proc, during the wrk runs): it moves much less than latency and throughput when",
        "other programs compete for the cores. 1e6 / CPU us is what one free core would serve.",
        "",
        "| what | rows | concurrency | p50 ms | p99 ms | requests/s | server CPU us/request |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        cpu = f"{r.cpu_us:.0f}" if r.cpu_us is not None else "-"
        lines.append(
            f"| {r.name} | {r.rows} | {r.concurrency} | {r.p50_ms:.3f} | {r.p99_ms:.3f} "
            f"| {r.rps:,.0f} | {cpu} |"
        )
    lines += ["", "## Ratios within this run", ""]
    for mode in ("direct", "thread"):
        server = f"model server ({mode})"
        one, hello1 = find(server, 1, 1), find("bare uvicorn", 1, 1)
        ort1 = find("bare onnxruntime", 1, 1)
        at64, hello64 = find(server, 1, 64), find("bare uvicorn", 1, 64)
        if one and hello1 and ort1 and at64 and hello64:
            lines.append(
                f"- {server}: 1-row p50 {one.p50_ms:.3f} ms = {one.p50_ms / hello1.p50_ms:.1f}x "
                f"bare uvicorn's, bare onnxruntime is {ort1.p50_ms / one.p50_ms:.0%} of it; "
                f"c=64 throughput {at64.rps:,.0f}/s = {at64.rps / hello64.rps:.0%} of bare "
                "uvicorn's"
            )
    direct, thread = find("model server (direct)", 1, 64), find("model server (thread)", 1, 64)
    if direct and thread:
        lines.append(
            f"- thread pool vs direct, 1 row at c=64: {thread.rps / direct.rps:.2f}x the throughput"
        )
    for rows, concurrency in ((32, 16), (128, 16), (256, 16)):
        d, t = (
            find("model server (direct)", rows, concurrency),
            find("model server (thread)", rows, concurrency),
        )
        if d and t:
            lines.append(
                f"- thread pool vs direct, {rows} rows at c={concurrency}: "
                f"{t.rps / d.rps:.2f}x the throughput, p99 {t.p99_ms:.2f} vs {d.p99_ms:.2f} ms"
            )
    for rows, concurrency in ((1, 1), (1, 16), (1, 64), (32, 16)):
        d, b = (
            find("model server (direct)", rows, concurrency),
            find("model server (batching)", rows, concurrency),
        )
        if d and b:
            cpu_ratio = f", CPU/request {b.cpu_us / d.cpu_us:.2f}x" if b.cpu_us and d.cpu_us else ""
            lines.append(
                f"- batching vs direct, {rows} row(s) at c={concurrency}: {b.rps / d.rps:.2f}x "
                f"the throughput, p50 {b.p50_ms:.2f} vs {d.p50_ms:.2f} ms, p99 {b.p99_ms:.2f} vs "
                f"{d.p99_ms:.2f} ms{cpu_ratio}"
            )
    best1 = find("model server (direct)", 1, 1)
    best64 = find("model server (direct)", 1, 64)
    lines += ["", "## Targets", ""]
    if best1:
        ok = "met" if best1.p50_ms <= TARGET_P50_MS else "NOT met"
        lines.append(f"- 1 row, c=1, p50 <= {TARGET_P50_MS} ms: {best1.p50_ms:.3f} ms ({ok})")
    if best64:
        ok = "met" if best64.rps >= TARGET_RPS_64 else "NOT met"
        lines.append(f"- 1 row, c=64, >= {TARGET_RPS_64:,} requests/s: {best64.rps:,.0f} ({ok})")
        if best64.cpu_us:
            lines.append(
                f"- server CPU per request at c=64: {best64.cpu_us:.0f} us, i.e. "
                f"{1e6 / best64.cpu_us:,.0f} requests/s from one free core"
            )
    if max(load_before[0], load_after[0]) > (os.cpu_count() or 1):
        lines.append(
            "- the load average was above the number of cores: absolute latency and "
            "throughput are the machine's, compare the ratios and the CPU per request"
        )
    return "\n".join(lines) + "\n"


def fmt_load(load: tuple[float, float, float]) -> str:
    return ", ".join(f"{v:.2f}" for v in load)


if __name__ == "__main__":
    main()
