"""Helpers the benchmarks share (run them as `python bench/<name>.py` from the repo root)."""

from __future__ import annotations

import re
import socket

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
