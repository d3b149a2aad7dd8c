"""``sluice up``, ``sluice down`` and ``sluice status``: the whole system as local processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import httpx
import typer
import yaml

from sluice.core.errors import Conflict, SluiceError
from sluice.local import plan as plans
from sluice.local.plan import Layout, Service
from sluice.local.prepare import MODEL, ROWS, materialise, prepare_data, train_versions
from sluice.local.stack import (
    STOP_SECONDS,
    choose_ports,
    launch,
    log_tail,
    readiness,
    redis_server_binary,
    start_lock,
    stop_record,
    stop_services,
    wait_ready,
)
from sluice.local.state import (
    Record,
    Running,
    home_folder,
    live_record,
    load_record,
    load_secrets,
    read_secrets,
    save_record,
    start_time,
)
from sluice.trainer.progress import ConsoleSteps

Home = Annotated[
    Path | None,
    typer.Option(
        help="The stack's folder [env SLUICE_HOME, default ./.sluice]", show_default=False
    ),
]
ALERTS = Path(__file__).resolve().parents[3] / "charts" / "sluice" / "files" / "alerts.yaml"


class Stopping(Exception):
    """SIGTERM arrived: stop the stack as Ctrl-C does."""


def sluice_command() -> list[str]:
    """This environment's ``sluice`` (the services run the same code as this command)."""
    exe = Path(sys.executable).with_name("sluice")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "sluice.cli"]


def canary_example(candidate: str) -> dict[str, Any]:
    """The rollout ``sluice up`` suggests: v2 as a canary judged on success rate and p99."""
    return {
        "apiVersion": "serving.sluice.dev/v1alpha1", "kind": "ModelRollout",
        "metadata": {"name": MODEL},
        "spec": {
            "model": MODEL, "stable": "v1", "candidate": candidate,
            "strategy": {"canary": {"steps": [
                {"setWeight": 20}, {"pause": {"duration": "10s"}}, {"setWeight": 50},
                {"analysis": {}}, {"setWeight": 100},
            ]}},
            "analysis": {
                "interval": "2s", "window": "10s", "minSamples": 50, "failureLimit": 2,
                "inconclusiveLimit": 30,
                "metrics": [
                    {"name": "success", "builtin": "successRate", "condition": ">= 0.99"},
                    {"name": "p99", "builtin": "latencyP99", "condition": "<= 0.5"},
                ],
            },
        },
    }  # fmt: skip


def urls_table(services: list[Running], states: dict[str, str] | None = None) -> str:
    """NAME URL PID [STATE], aligned, one service a line."""
    head = ["SERVICE", "URL", "PID"] + (["STATE"] if states is not None else [])
    rows = [head]
    for s in services:
        row = [s.name, s.url, str(s.pid)]
        if states is not None:
            row.append(states.get(s.name, ""))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)  # fmt: skip


def set_route(router: str, upstreams: dict[str, str], token: str) -> None:
    body = {"upstreams": upstreams, "stable": "v1"}
    headers = {"authorization": f"Bearer {token}"}
    answer = httpx.put(f"{router}/admin/v1/routes/{MODEL}", json=body, headers=headers, timeout=10)
    if answer.status_code != 200:
        raise SluiceError(f"setting the {MODEL} route failed: {answer.status_code} {answer.text}")


def up(
    port: Annotated[
        list[str] | None,
        typer.Option("--port", help="NAME=PORT for a service (repeat); others get free ports"),
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Return once ready; `sluice down` stops it")
    ] = False,
    rows: Annotated[
        int, typer.Option(min=1000, help="Customers to generate and train on (first run only)")
    ] = ROWS,
    home: Home = None,
) -> None:
    """Start the whole system on this machine: Redis, the feature store, two versions of the
    churn model, the router, the drift monitor, the rollout controller and Prometheus (when
    installed). Trains the versions on the first run. Ctrl-C stops everything."""
    layout = Layout(home_folder(home))
    try:
        given = plans.parse_ports(port or [])
    except ValueError as exc:
        raise SluiceError(str(exc)) from None
    running = live_record(layout.home)
    if running is not None:
        raise Conflict(_already(layout, running))
    steps = ConsoleSteps()
    _stop_on_signals()
    with start_lock(layout):
        running = live_record(layout.home)
        if running is not None:
            raise Conflict(_already(layout, running))
        try:  # `sluice down` meanwhile signals this process: it stops what has started
            record, popens = _start(layout, given, steps, rows=rows, supervisor=os.getpid())
        except (KeyboardInterrupt, Stopping):
            typer.echo("\ninterrupted: stopped what had started", err=True)
            raise typer.Exit(130) from None
    _print_welcome(layout, record)
    if detach:
        record.supervisor, record.supervisor_started = 0, None
        save_record(layout, record)
        return
    _supervise(layout, record, popens)


def _stop_on_signals() -> None:
    """SIGTERM (``sluice down``) and SIGHUP (the terminal closed) stop the stack as Ctrl-C
    does, even while it starts."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGHUP, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with it ignored


def _already(layout: Layout, record: Record) -> str:
    return (
        f"a stack already runs from {layout.home} (router {record.url(plans.ROUTER)}): "
        "`sluice status` shows it, `sluice down` stops it"
        if plans.ROUTER in record.by_name()
        else f"a stack already runs from {layout.home}: `sluice down` stops it"
    )


def _start(
    layout: Layout, given: dict[str, int], steps: ConsoleSteps, *, rows: int, supervisor: int
) -> tuple[Record, dict[str, subprocess.Popen[bytes]]]:
    secrets = load_secrets(layout)
    prometheus = shutil.which("prometheus")
    versions = ["v1", "v2"]
    names = plans.service_names(versions, prometheus=prometheus is not None)
    ports = choose_ports(names, given)
    sluice = sluice_command()
    services = plans.plan(
        layout, sluice=sluice, redis_server=redis_server_binary(), prometheus=prometheus,
        model=MODEL, versions=versions, ports=ports, secrets=secrets,
    )  # fmt: skip
    for log in layout.logs.glob("*.log") if layout.logs.exists() else []:
        log.unlink()
    record = Record(supervisor, [], start_time(supervisor) if supervisor else None)
    popens: dict[str, subprocess.Popen[bytes]] = {}
    password = secrets["SLUICE_REDIS_PASSWORD"]

    def start(group: list[Service]) -> None:
        for service in group:
            popens[service.name], run = launch(service, layout)
            record.services.append(run)
            save_record(layout, record)  # `sluice down` finds even a half-started stack
        for run in record.services[-len(group) :]:
            wait_ready(run, password=password)
            if len(group) > 1:
                steps.note(f"  ready  {run.name:<19} {run.url}")

    try:
        layout.redis_dir.mkdir(parents=True, exist_ok=True)
        with steps.step("start Redis (append-only file in the state folder)"):
            start([services[0]])
        prepare_data(layout, sluice, steps, rows)
        env = {**secrets, "SLUICE_REDIS_URL": plans.redis_url(ports[plans.REDIS], password)}
        materialise(layout, sluice, env, steps)
        train_versions(layout, steps)
        if prometheus is not None:
            folder = layout.prometheus_dir
            folder.mkdir(parents=True, exist_ok=True)
            config = plans.prometheus_config(services, ALERTS)
            (folder / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        rest = services[1:]
        with steps.step(f"start {len(rest)} services and wait until each is ready"):
            start(rest)
        with steps.step(f"route {MODEL} to v1 (v2 ready for a rollout)"):
            ups = {v: record.url(plans.model_server(v)) for v in versions}
            set_route(record.url(plans.ROUTER), ups, secrets["SLUICE_ADMIN_TOKEN"])
        rollouts = layout.stack / "canary-v2.yaml"
        rollouts.write_text(yaml.safe_dump(canary_example("v2"), sort_keys=False))
    except BaseException:
        _ignore_signals()
        stop_record(layout, record)
        raise
    return record, popens


def _print_welcome(layout: Layout, record: Record) -> None:
    router = record.url(plans.ROUTER)
    here = Path.cwd()
    rel = layout.stack.relative_to(here) if layout.stack.is_relative_to(here) else layout.stack
    typer.echo(f"\nSluice runs ({len(record.services)} processes, logs in {rel}/logs):\n")
    typer.echo(urls_table(record.services))
    default = layout.home == home_folder()
    prefix = ("" if default else f"SLUICE_HOME={layout.home} ") + _sluice_to_type(here)
    typer.echo(
        f"""
Try first (a prediction by customer id: the router looks the features up):

  curl -s -X POST {router}/v1/models/{MODEL}:predict -H 'content-type: application/json' \\
    -d '{{"instances": [{{"customer_id": "C000042"}}]}}'

then roll v2 out as a canary (it holds until traffic arrives) and look at it:

  {prefix} rollout apply -f {rel}/canary-v2.yaml && {prefix} rollout get {MODEL}
"""
    )


def _sluice_to_type(here: Path) -> str:
    """How to run this ``sluice`` from ``here`` in a shell that need not have .venv/bin on
    PATH (``./scripts/up`` puts it there only for itself): ``.venv/bin/sluice``."""
    command = sluice_command()
    if len(command) > 1:
        return " ".join(command)
    exe = Path(command[0])
    if exe.is_relative_to(here):
        return str(exe.relative_to(here))
    found = shutil.which("sluice")
    return "sluice" if found and Path(found).resolve() == exe.resolve() else str(exe)


def _ignore_signals() -> None:
    """While stopping: a second Ctrl-C must not cut it short and leave processes behind."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)


def _on_sigterm(_sig: int, _frame: FrameType | None) -> None:
    raise Stopping


def _supervise(layout: Layout, record: Record, popens: dict[str, subprocess.Popen[bytes]]) -> None:
    """Until Ctrl-C or SIGTERM (``sluice down``): report any service that dies, with the
    end of its log; then stop every service."""
    typer.echo("Ctrl-C (or `sluice down` in another shell) stops everything.")
    reported: set[int] = set()
    try:
        while True:
            for run in record.services:
                popen = popens.get(run.name)
                code = popen.poll() if popen is not None and popen.pid == run.pid else None
                if run.pid in reported or (code is None and run.alive()):
                    continue
                reported.add(run.pid)
                typer.secho(
                    f"\n{run.name} exited (code {code}); the end of {run.log}:\n"
                    f"{log_tail(run.log)}\n",
                    err=True, fg=typer.colors.RED,
                )  # fmt: skip
            time.sleep(0.5)
            now = load_record(layout)
            if now is None:  # `sluice down` removed it: it stops the services itself
                break
            record.services = now.services  # a service restarted by hand is watched too
    except (KeyboardInterrupt, Stopping):
        pass
    finally:
        _ignore_signals()
        typer.echo("stopping ...", err=True)
        stop_services(record.services)
        for popen in popens.values():
            popen.poll()
        now = load_record(layout)
        if now is not None and now.supervisor == os.getpid():
            stop_record(layout, now)
        typer.echo("stopped.", err=True)


def down(home: Home = None) -> None:
    """Stop the stack `sluice up` started: every process, none left behind."""
    layout = Layout(home_folder(home))
    record = load_record(layout)
    if record is None:
        typer.echo(f"no stack runs from {layout.home}")
        return
    killed = stop_record(layout, record)
    typer.echo(f"stopped {len(record.services)} processes")
    if killed:
        typer.echo(f"(killed after {STOP_SECONDS:.0f}s: {', '.join(killed)})")


def status(home: Home = None) -> None:
    """What runs, where, and whether each service is ready; the log's end of any that died."""
    layout = Layout(home_folder(home))
    record = load_record(layout)  # a stack whose every process died is shown, not hidden
    if record is None:
        typer.echo(f"no stack runs from {layout.home} (`sluice up` starts one)")
        raise typer.Exit(1)
    password = read_secrets(layout).get("SLUICE_REDIS_PASSWORD")
    states: dict[str, str] = {}
    for run in record.services:
        reason = readiness(run, password)
        states[run.name] = "ready" if reason is None else ("DEAD" if reason == "exited" else
                                                          f"not ready: {reason}")  # fmt: skip
    typer.echo(urls_table(record.services, states))
    dead = [run for run in record.services if states[run.name] == "DEAD"]
    for run in dead:
        typer.echo(f"\n{run.name} is not running; the end of {run.log}:\n{log_tail(run.log)}")
    if not record.alive():
        typer.echo("\nevery process of this stack is gone: `sluice up` starts it again")
    if any(state != "ready" for state in states.values()):
        raise typer.Exit(1)
