"""Helpers the benchmarks share: ports, wrk's output, CPU of a process tree, servers, Redis,
the result folder and the peers' environments."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
WRK_SCRIPT = """
local f = io.open(os.getenv("SLUICE_BENCH_BODY"), "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
"""
"""wrk's Lua: POST the file named by ``SLUICE_BENCH_BODY`` as JSON."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def parse_wrk(out: str) -> tuple[float, float, float]:
    """(p50 ms, p99 ms, requests/s) from ``wrk --latency`` output."""

    def percentile(p: int) -> float:
        match = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if not match:
            raise ValueError(f"no {p}% line in wrk output:\n{out}")
        return float(match.group(1)) * _UNITS[match.group(2)]

    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.MULTILINE)
    if not rps:
        raise ValueError(f"no Requests/sec in wrk output:\n{out}")
    return percentile(50), percentile(99), float(rps.group(1))


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and every live descendant (from /proc),
    plus what its waited-for children used: a server's whole cost, workers included."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            stats[int(entry.name)] = fields
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        if (times := stats.get(current)) is not None:
            total += sum(int(f) for f in times[11:15])  # utime stime cutime cstime
        todo.extend(children.get(current, ()))
    return total / os.sysconf("SC_CLK_TCK")


@contextmanager
def serving(
    argv: list[str], url: str, ready: str, env: dict[str, str], log: Path | None = None
) -> Iterator[tuple[str, int]]:
    """Run a server until ``url + ready`` answers (200, or 405 for a POST-only path);
    yield (url, pid); terminate it after."""
    out: IO[bytes] | int = log.open("wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                tail = log.read_text()[-4000:] if log else ""
                raise RuntimeError(f"{argv[:3]} exited with {proc.returncode}:\n{tail}")
            try:
                if httpx.get(url + ready, timeout=1).status_code in (200, 405):
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(url)
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(20)
        if not isinstance(out, int):
            out.close()


RESULTS = Path(os.environ.get("SLUICE_BENCH_RESULTS", "bench/results"))
"""Where each benchmark writes its page: ``bench/results`` under the current folder (in a
checkout, the committed pages), or ``SLUICE_BENCH_RESULTS``."""
ENVS = Path(os.environ.get("SLUICE_CACHE", Path.home() / ".cache" / "sluice")) / "bench-envs"
"""The peers' own environments (MLServer, KServe, py-spy): never a project dependency."""


def need(*tools: str) -> None:
    """Exit naming the first of ``tools`` (wrk, nginx) that is not installed, and how to
    get it."""
    for tool in tools:
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            sys.exit(f"{tool} is not on PATH: install it (Debian: apt-get update && apt-get "
                     f"install -y {tool}; in a Sluice checkout: scripts/tools {tool})")  # fmt: skip


@contextmanager
def redis_server(workdir: Path, *extra: str, port: int | None = None) -> Iterator[tuple[str, int]]:
    """A real redis-server on a free loopback port (or ``port``), no persistence, ``extra``
    arguments added; yields (url, pid)."""
    from sluice.local.stack import redis_server_binary

    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    argv = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
            "--dir", str(workdir), "--save", "", "--appendonly", "no", *extra]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        import redis

        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {port}") from None
                time.sleep(0.02)
        client.close()
        yield f"redis://127.0.0.1:{port}/0", proc.pid
    finally:
        proc.terminate()
        proc.wait(20)


@contextmanager
def redis_cluster(workdir: Path, shards: int = 3) -> Iterator[tuple[str, list[int]]]:
    """A real Redis Cluster of ``shards`` primaries on loopback (slots split evenly by
    ``redis-cli --cluster create``); yields the URL of one node and every node's pid."""
    from contextlib import ExitStack

    import redis

    from sluice.local.stack import redis_server_binary

    ports: list[int] = []
    while len(ports) < shards:  # the cluster bus listens on port + 10000: keep both free
        port = free_port()
        if port + 10000 <= 65535 and port not in ports:
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            ports.append(port)
    with ExitStack() as stack:
        pids = [
            stack.enter_context(redis_server(
                workdir / str(port), "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{port}.conf", port=port,
            ))[1]
            for port in ports
        ]  # fmt: skip
        cli = str(Path(redis_server_binary()).with_name("redis-cli"))
        nodes = [f"127.0.0.1:{p}" for p in ports]
        subprocess.run([cli, "--cluster", "create", *nodes, "--cluster-replicas", "0",
                        "--cluster-yes"], check=True, capture_output=True, timeout=60)  # fmt: skip
        deadline = time.monotonic() + 30
        while not all(
            (info := redis.Redis(port=p).cluster("info"))["cluster_state"] == "ok"
            and int(info["cluster_known_nodes"]) == shards
            for p in ports
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not come up")
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{ports[0]}/0", pids


def environment(home: Path, requirements: list[str]) -> Path:
    """A venv at ``home`` holding ``requirements``, made once (uv when it is on PATH, else
    venv and pip); its python."""
    python = home / "bin" / "python"
    marker = home / ".sluice-bench"
    wanted = " ".join(requirements)
    if marker.exists() and marker.read_text() == wanted:
        return python
    print(f"installing {wanted} into {home} ...", flush=True)
    uv = shutil.which("uv")
    if uv:
        subprocess.run([uv, "venv", "--quiet", "--clear", "--python", sys.executable, str(home)],
                       check=True)  # fmt: skip
        subprocess.run([uv, "pip", "install", "--quiet", "--python", str(python), *requirements],
                       check=True)  # fmt: skip
    else:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(home)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *requirements],
                       check=True)  # fmt: skip
    marker.write_text(wanted)
    return python


def churn_views(source: Path) -> str:
    """Feature views over the churn table at ``source`` (``sluice.trainer.data``): one view,
    ``churn``, keyed by ``customer_id``, with every feature the trainer's model takes."""
    from sluice.trainer.data import generate_churn

    sample = generate_churn(10, seed=1)
    dtypes = {"int64": "int64", "float64": "float64"}
    features = [
        f"      - {{name: {name}, dtype: {dtypes.get(str(dtype), 'string')}}}"
        for name, dtype in sample.dtypes.items()
        if name not in ("customer_id", "event_timestamp", "churned")
    ]
    return (
        "\n".join(
            [
                "views:",
                "  - name: churn",
                "    entity: {join_key: customer_id, dtype: string}",
                "    ttl: 3650d",
                f"    source: {{path: {source}, timestamp_field: event_timestamp}}",
                "    features:",
                *features,
            ]
        )
        + "\n"
    )
