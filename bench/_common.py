"""Helpers the benchmarks share (run them as `python bench/<name>.py` from the repo root)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


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
        if fields := stats.get(current):
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        todo += children.get(current, [])
    return total / os.sysconf("SC_CLK_TCK")


@contextmanager
def serving(
    argv: list[str], url: str, ready: str, env: dict[str, str], log: Path | None = None
) -> Iterator[tuple[str, int]]:
    """Run a server until ``url + ready`` answers (200, or 405 for a POST-only path);
    yield (url, pid); terminate it after."""
    out = log.open("wb") if log else subprocess.DEVNULL
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
        if log:
            out.close()
