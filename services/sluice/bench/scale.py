"""How throughput grows with processes on this machine: k model servers sharing one port,
k routers sharing another (SO_REUSEPORT, the ``reuse_port`` setting), one Redis, wrk.

For k = 1, 2, 3, 4 (``--processes``) it starts k ``sluice serve model-server`` processes on
one port and k ``sluice serve router`` processes on another, routes the churn model to the
model servers' port, and drives two targets with wrk at concurrency 64, in turn, for
``--repeat`` rounds: the model servers alone (one V2 row) and the whole path through the
routers (the same row, prediction log on). Each row reports requests per second, p50 and
p99, and the CPU per request of every process involved (Redis included), with zero errors
or the run stops. wrk runs on the same cores, so the table shows where this machine stops,
and docs/scaling.md reads the per-request costs off it.

    uv run python -m sluice.bench.scale              # writes bench/results/scale.md
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from sluice.bench._common import RESULTS, free_port, need, serving, tree_cpu_seconds
from sluice.bench.model_server import train, write_bodies
from sluice.bench.peers import WRK_SCRIPT, machine, redis, wrk
from sluice.core.serve import listeners

TOKEN = "bench"
INFER = "/v2/models/churn/infer"


@dataclass
class Row:
    target: str
    processes: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float
    requests: int


@contextmanager
def group(
    argv: list[str], port: int, env: dict[str, str], k: int, work: Path, name: str
) -> Iterator[list[int]]:
    """``k`` copies of a server sharing ``port``; yields their pids once all k listen."""
    url = f"http://127.0.0.1:{port}"
    with ExitStack() as stack:
        pids = []
        for i in range(k):
            log = work / f"{name}-{k}-{i}.log"
            pids.append(stack.enter_context(serving(argv, url, "/readyz", env, log))[1])
            deadline = time.monotonic() + 60
            while listeners(port) < i + 1:  # /readyz may have been answered by another copy
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} {i + 1} of {k} is not listening on {port}")
                time.sleep(0.1)
        yield pids


def measure(url: str, body: Path, script: Path, pids: list[int], repeat: int, duration: int,
            concurrency: int) -> tuple[float, float, float, float, int]:  # fmt: skip
    rounds = []
    for _ in range(repeat):
        before = sum(tree_cpu_seconds(p) for p in pids)
        figures = wrk(url, body, script, concurrency, duration)
        used = sum(tree_cpu_seconds(p) for p in pids) - before
        figures["cpu_us"] = used / figures["requests"] * 1e6
        rounds.append(figures)

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    total = int(sum(r["requests"] for r in rounds))
    return median("rps"), median("p50"), median("p99"), median("cpu_us"), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--repeat", type=int, default=3, help="wrk runs per target and level")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.md")
    args = parser.parse_args()
    need("wrk")
    command = shlex.join(["python", "-m", "sluice.bench.scale", *sys.argv[1:]])
    sluice = str(Path(sys.executable).with_name("sluice"))
    rows: list[Row] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="sluice-scale-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        print("training the churn model with our trainer ...", flush=True)
        registry = train(work / "registry", 5000)
        body = write_bodies(work, registry)[1]
        script = work / "post.lua"
        script.write_text(WRK_SCRIPT)
        redis_url, redis_pid = stack.enter_context(redis(work))
        for k in args.processes:
            print(f"{k} model server(s) and {k} router(s) ...", flush=True)
            ms_port, rt_port = free_port(), free_port()
            ms_argv = [sluice, "serve", "model-server", "--registry", str(registry),
                       "--model", "churn", "--version", "v1", "--port", str(ms_port)]  # fmt: skip
            rt_argv = [sluice, "serve", "router", "--redis-url", redis_url,
                       "--registry", str(registry), "--port", str(rt_port)]  # fmt: skip
            ms_env = {"SLUICE_MODEL_SERVER_REUSE_PORT": "true",
                      "SLUICE_MODEL_SERVER_LOG_LEVEL": "WARNING"}  # fmt: skip
            rt_env = {"SLUICE_ROUTER_REUSE_PORT": "true", "SLUICE_ROUTER_LOG_LEVEL": "WARNING",
                      "SLUICE_ADMIN_TOKEN": TOKEN,
                      "SLUICE_ROUTER_UPSTREAM_TIMEOUT_SECONDS": "10"}  # fmt: skip
            with (
                group(ms_argv, ms_port, ms_env, k, work, "model-server") as ms_pids,
                group(rt_argv, rt_port, rt_env, k, work, "router") as rt_pids,
            ):
                ms_url, rt_url = f"http://127.0.0.1:{ms_port}", f"http://127.0.0.1:{rt_port}"
                route = {"upstreams": {"v1": ms_url}, "stable": "v1"}
                admin = {"authorization": f"Bearer {TOKEN}"}
                put = httpx.put(f"{rt_url}/admin/v1/routes/churn", json=route, headers=admin)
                put.raise_for_status()
                time.sleep(1)  # every router has read the new table
                targets = [
                    ("model servers alone", ms_url + INFER, ms_pids),
                    ("routers -> model servers", rt_url + INFER, [*rt_pids, *ms_pids, redis_pid]),
                ]
                for name, url, pids in targets:
                    rps, p50, p99, cpu, total = measure(
                        url, body, script, pids, args.repeat, args.duration, args.concurrency
                    )
                    rows.append(Row(name, k, rps, p50, p99, cpu, total))
                    print(f"  {name:26} k={k} {rps:7,.0f}/s p50={p50:.2f} p99={p99:.2f} ms "
                          f"cpu={cpu:.0f}us", flush=True)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(rows, command, load_before, os.getloadavg(), args))
    print(args.out.read_text())


def render(
    rows: list[Row],
    command: str,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
    args: argparse.Namespace,
) -> str:
    def load(values: tuple[float, float, float]) -> str:
        return ", ".join(f"{v:.2f}" for v in values)

    lines = [
        "# Throughput against processes on one machine (SO_REUSEPORT)",
        "",
        f"- date: {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"- machine: {machine()}",
        f"- load average before / after (1, 5, 15 min): {load(load_before)} / {load(load_after)}",
        f"- command: `{command}` (wrk -t1 -c{args.concurrency} on the same cores, "
        f"{args.duration} s per run, medians of {args.repeat} rounds, zero errors)",
        "- k model servers share one port and k routers another; one Redis; one V2 row with "
        "every feature; CPU: every process of the target (routers, model servers, Redis)",
        "",
        "| target | processes each | requests/s | vs 1 process | p50 ms | p99 ms "
        "| CPU us/request |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        first = next(x for x in rows if x.target == r.target)
        lines.append(
            f"| {r.target} | {r.processes} | {r.rps:,.0f} | {r.rps / first.rps:.2f}x "
            f"| {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.cpu_us:.0f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
