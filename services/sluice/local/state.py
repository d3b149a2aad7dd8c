"""The state folder of a local stack, ``<home>/stack/`` (home is ``.sluice`` by default):

=================  ==========================================================================
``secrets.env``    the stack's tokens and Redis password, ``NAME=value`` lines, mode 0600;
                   generated on the first ``sluice up`` and kept (Redis's AOF outlives a run)
``stack.json``     the running stack (mode 0600): the supervisor's pid and, per service, its
                   pid (= its process group), port, URL, log, command line, environment
                   and start time (a pid reused by another process is told apart)
``logs/<name>.log`` each service's output
``redis/``         Redis's append-only file
``lock``           held while ``sluice up`` starts the stack: two at once cannot both start
=================  ==========================================================================

``stack.json`` is written as each service starts (``sluice down`` finds even a half-started
stack) and removed by ``sluice down``; a record whose processes are all gone is stale:
``sluice up`` starts anew over it, ``sluice status`` shows it as dead.
"""

from __future__ import annotations

import json
import os
import secrets as random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluice.local.plan import ROLLOUT, SECRETS, Layout

HOME_ENV = "SLUICE_HOME"
DEFAULT_HOME = ".sluice"


def home_folder(given: Path | None = None) -> Path:
    """The stack's home: ``given``, else ``$SLUICE_HOME``, else ``./.sluice``."""
    return (given or Path(os.environ.get(HOME_ENV) or DEFAULT_HOME)).resolve()


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)  # an older file keeps its mode through O_CREAT


def read_secrets(layout: Layout) -> dict[str, str]:
    """The stack's secrets as ``secrets.env`` holds them (none when it does not exist)."""
    path = layout.stack / "secrets.env"
    found: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and name in SECRETS and value:
                found[name] = value
    return found


def load_secrets(layout: Layout) -> dict[str, str]:
    """The stack's secrets, generated (and written with mode 0600) the first time.
    ``SLUICE_REDIS_PASSWORD`` in the environment is the Redis password when given."""
    path = layout.stack / "secrets.env"
    found = read_secrets(layout)
    given = os.environ.get("SLUICE_REDIS_PASSWORD")
    if given and found.get("SLUICE_REDIS_PASSWORD") != given:
        found["SLUICE_REDIS_PASSWORD"] = given
        _write_private(path, "".join(f"{k}={v}\n" for k, v in found.items()))
    if set(found) != set(SECRETS):
        found = {name: found.get(name) or random.token_urlsafe(24) for name in SECRETS}
        _write_private(path, "".join(f"{k}={v}\n" for k, v in found.items()))
    return found


@dataclass
class Running:
    """One service as ``stack.json`` records it."""

    name: str
    pid: int
    port: int
    url: str
    log: str
    argv: list[str]
    env: dict[str, str]
    ready_path: str | None
    started: int | None = None
    """The process's start time (:func:`start_time`): a pid reused since, by another
    process (after a reboot, say), is not this service."""

    def alive(self) -> bool:
        return pid_alive(self.pid) and not reused(self.pid, self.started)


@dataclass
class Record:
    """The running stack."""

    supervisor: int
    services: list[Running]
    supervisor_started: int | None = None

    def by_name(self) -> dict[str, Running]:
        return {s.name: s for s in self.services}

    def url(self, name: str) -> str:
        return self.by_name()[name].url

    def alive(self) -> bool:
        return self.supervisor_alive() or any(s.alive() for s in self.services)

    def supervisor_alive(self) -> bool:
        """The foreground ``sluice up`` that started the stack still runs (0: detached)."""
        return (
            self.supervisor > 0
            and pid_alive(self.supervisor)
            and not reused(self.supervisor, self.supervisor_started)
        )


def pid_alive(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (``/proc/<pid>/stat`` field 22);
    None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[-1].split()[19])


def reused(pid: int, started: int | None) -> bool:
    """True when ``pid`` now names a process other than the one that ``started`` then."""
    now = start_time(pid)
    return started is not None and now is not None and now != started


def record_path(layout: Layout) -> Path:
    return layout.stack / "stack.json"


def save_record(layout: Layout, record: Record) -> None:
    doc: dict[str, Any] = {
        "supervisor": record.supervisor,
        "supervisor_started": record.supervisor_started,
        "services": [vars(s) for s in record.services],
    }
    _write_private(record_path(layout), json.dumps(doc, indent=2))


def load_record(layout: Layout) -> Record | None:
    """The recorded stack, or None when there is none (or it cannot be read)."""
    try:
        doc = json.loads(record_path(layout).read_text())
        services = [Running(**s) for s in doc["services"]]
        return Record(doc["supervisor"], services, doc.get("supervisor_started"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def live_record(home: Path | None = None) -> Record | None:
    """The stack running from ``home`` (see :func:`home_folder`), or None."""
    record = load_record(Layout(home_folder(home)))
    return record if record is not None and record.alive() else None


def local_admin(home: Path | None = None) -> tuple[str, str] | None:
    """The running stack's rollout controller URL and admin token, or None."""
    layout = Layout(home_folder(home))
    record = live_record(layout.home)
    if record is None or ROLLOUT not in record.by_name():
        return None
    return record.url(ROLLOUT), read_secrets(layout).get("SLUICE_ADMIN_TOKEN", "")
