"""``sluice serve rollout-controller`` and ``sluice rollout ...``: the controller and the
commands that talk to its admin API (``SLUICE_ADMIN_TOKEN``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer
import yaml

from sluice.core.errors import InvalidInput, NotFound, SluiceError, Unavailable
from sluice.core.tokens import client_token

if TYPE_CHECKING:
    from sluice.rollout.watch import Snapshot

rollout_app = typer.Typer(
    help="Declare and steer rollouts through the rollout controller.", no_args_is_help=True
)
ControllerUrl = Annotated[
    str,
    typer.Option(
        "--controller-url", envvar="SLUICE_ROLLOUT_URL", help="The rollout controller's URL"
    ),
]
Output = Annotated[str, typer.Option("-o", "--output", help="text, yaml or json")]
Watch = Annotated[
    bool,
    typer.Option(
        "-w", "--watch", help="Show it live until it is promoted or aborted (then exit 0)"
    ),
]
Interval = Annotated[float, typer.Option(min=0.1, help="With --watch: seconds between two looks")]
DEFAULT_URL = "http://127.0.0.1:8095"
LOG_WIDTH = 160
"""Columns of ``--watch`` when its output is not a terminal and COLUMNS is not set."""


def serve(
    redis_url: Annotated[str | None, typer.Option(help="Redis [env SLUICE_REDIS_URL]")] = None,
    source: Annotated[
        str | None, typer.Option(help="redis or kubernetes [env SLUICE_ROLLOUT_SOURCE]")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="Kubernetes namespace [env ..._NAMESPACE]")
    ] = None,
    kubeconfig: Annotated[
        Path | None, typer.Option(help="kubeconfig file [env ..._KUBECONFIG]")
    ] = None,
    drift_monitor_url: Annotated[
        str | None, typer.Option(help="The drift monitor [env ..._DRIFT_MONITOR_URL]")
    ] = None,
    tick_seconds: Annotated[float | None, typer.Option(help="[env ..._TICK_SECONDS]")] = None,
    lease_seconds: Annotated[float | None, typer.Option(help="[env ..._LEASE_SECONDS]")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on [env ..._HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [env ..._PORT]")] = None,
    log_level: Annotated[str | None, typer.Option(help="Log level [env ..._LOG_LEVEL]")] = None,
) -> None:
    """Run declared rollouts: move traffic step by step on measured evidence."""
    from pydantic import ValidationError

    from sluice.rollout.__main__ import main
    from sluice.rollout.settings import Settings

    given = {
        "redis_url": redis_url, "source": source, "namespace": namespace,
        "kubeconfig": kubeconfig, "drift_monitor_url": drift_monitor_url,
        "tick_seconds": tick_seconds, "lease_seconds": lease_seconds, "host": host,
        "port": port, "log_level": log_level,
    }  # fmt: skip
    try:
        settings = Settings(**{k: v for k, v in given.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"rollout controller settings: {problems}") from None
    main(settings)


def call(method: str, url: str, path: str, body: Any = None) -> Any:
    """One admin API call; its error becomes a SluiceError with the server's message."""
    url, token = target(url)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(
            method, url.rstrip("/") + path, json=body, headers=headers, timeout=10.0
        )
    except httpx.HTTPError as exc:
        raise Unavailable(f"cannot reach the rollout controller at {url}: {exc}") from None
    try:
        doc = response.json() if response.content else {}
    except ValueError:  # a proxy's HTML page, say
        doc = {}
    if response.status_code >= 400:
        message = (doc.get("error") or {}).get("message") if isinstance(doc, dict) else None
        text = f"{response.status_code}: {message or response.text[:200]}"
        if response.status_code == 404:
            raise NotFound(text)
        raise Unavailable(text) if response.status_code >= 500 else SluiceError(text)
    return doc


def target(url: str) -> tuple[str, str]:
    """The controller's URL and the admin token: as given (option or env), else those of
    the stack ``sluice up`` runs from ``$SLUICE_HOME`` (``./.sluice``), if one runs."""
    token = client_token(os.environ.get("SLUICE_ADMIN_TOKEN")) or ""  # the first, rotating
    default = url == DEFAULT_URL and "SLUICE_ROLLOUT_URL" not in os.environ
    if default or not token:
        from sluice.local.state import local_admin

        local = local_admin()
        if local is not None:
            url = local[0] if default else url
            token = token or local[1]
    return url, token


def table(rollouts: list[dict[str, Any]]) -> str:
    """The rollouts as ``kubectl get`` shows them: NAME MODEL PHASE STEP WEIGHT MESSAGE."""
    rows = [("NAME", "MODEL", "PHASE", "STAGE", "STEP", "WEIGHT", "MESSAGE")]
    for doc in rollouts:
        st = doc.get("status") or {}
        rows.append((
            doc["metadata"]["name"], doc["spec"]["model"], st.get("phase", ""),
            st.get("stage", ""), str(st.get("step", 0)), f"{st.get('weight', 0)}%",
            (st.get("message") or "")[:70],
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)) + "  " + r[-1]
        for r in rows
    )


def describe(doc: dict[str, Any]) -> str:
    """One rollout in full: phase, step, weight, every metric against its condition."""
    st = doc.get("status") or {}
    spec = doc["spec"]
    lines = [
        f"Name:      {doc['metadata']['name']}",
        f"Model:     {spec['model']}  stable {spec['stable']} -> candidate {spec['candidate']}",
        f"Phase:     {st.get('phase', 'Pending')}   stage {st.get('stage', '')}  "
        f"step {st.get('step', 0)}  weight {st.get('weight', 0)}%  mirror {st.get('mirror', 0)}%",
        f"Message:   {st.get('message', '')}",
        f"Checks:    {st.get('checks', 0)} (failed {st.get('failures', 0)}, inconclusive in a "
        f"row {st.get('inconclusives', 0)}, passed in a row {st.get('passes', 0)})",
    ]
    if st.get("metrics"):
        lines.append("Metrics:")
        for m in st["metrics"]:
            value = "none" if m.get("value") is None else f"{m['value']:.6g}"
            lines.append(
                f"  {m['name']:<22} {value:>12}  {m.get('condition', ''):<28} "
                f"{m.get('verdict', ''):<13} {m.get('samples', 0)} samples  {m.get('message', '')}"
            )
    if st.get("history"):
        lines.append("History:")
        for t in st["history"][-10:]:
            lines.append(
                f"  {t['phase']:<13} step {t['step']:<3} {t['reason']}: {t.get('message', '')}"
            )
    return "\n".join(lines)


@rollout_app.command("apply")
def apply(
    file: Annotated[Path, typer.Option("-f", "--file", help="ModelRollout YAML ('-' for stdin)")],
    controller_url: ControllerUrl = DEFAULT_URL,
) -> None:
    """Declare rollouts (one or more YAML documents)."""
    text = sys.stdin.read() if str(file) == "-" else _read(file)
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{file}: not valid YAML: {exc}") from None
    if not docs:
        raise InvalidInput(f"{file}: no ModelRollout in it")
    for doc in docs:
        name = ((doc or {}).get("metadata") or {}).get("name") if isinstance(doc, dict) else None
        if not isinstance(name, str):
            raise InvalidInput(f"{file}: a document has no metadata.name")
        call("PUT", controller_url, f"/admin/v1/rollouts/{name}", doc)
        typer.echo(f"modelrollout/{name} applied")


def _read(file: Path) -> str:
    try:
        return file.read_text()
    except OSError as exc:
        raise InvalidInput(f"cannot read {file}: {exc.strerror}") from None


@rollout_app.command("list")
def list_(controller_url: ControllerUrl = DEFAULT_URL) -> None:
    """Every rollout, one line each."""
    typer.echo(table(call("GET", controller_url, "/admin/v1/rollouts")["rollouts"]))


@rollout_app.command("get")
def get(
    name: str,
    controller_url: ControllerUrl = DEFAULT_URL,
    output: Output = "text",
    watch: Watch = False,
    interval: Interval = 2.0,
) -> None:
    """One rollout: phase, step, weight and every analysis value against its condition."""
    if watch:
        if output != "text":
            raise InvalidInput(f"--watch shows text, not -o {output}")
        _watch(name, controller_url, interval)
        return
    doc = call("GET", controller_url, f"/admin/v1/rollouts/{name}")
    if output == "yaml":
        typer.echo(yaml.safe_dump(doc, sort_keys=False))
    elif output == "json":
        import json

        typer.echo(json.dumps(doc, indent=2))
    else:
        typer.echo(describe(doc))


def _watch(name: str, controller_url: str, interval: float) -> None:
    from sluice.rollout.watch import Snapshot

    keeps_events = [True]  # in a cluster the controller keeps none (409): show the history

    def fetch() -> Snapshot:
        doc = call("GET", controller_url, f"/admin/v1/rollouts/{name}")
        events = None
        if keeps_events[0]:
            try:
                events = call("GET", controller_url, f"/admin/v1/rollouts/{name}/events")["events"]
            except (Unavailable, NotFound):
                raise
            except SluiceError:
                keeps_events[0] = False
        return Snapshot(doc, events)

    show_watch(fetch, interval)


def show_watch(fetch: Callable[[], Snapshot], interval: float, source: str = "controller") -> None:
    """``--watch`` of ``sluice rollout get`` and ``kubectl sluice get``: until the rollout
    is promoted or aborted, then its verdict line; Ctrl-C exits 130."""
    from rich.console import Console

    from sluice.rollout.watch import watch

    # in place only on a real terminal: FORCE_COLOR in a CI log gives colour, not cursor moves
    live = sys.stdout.isatty()
    width = None if live or "COLUMNS" in os.environ else LOG_WIDTH  # a log: wrap less than at 80
    try:
        line = watch(
            fetch, Console(highlight=False, width=width), interval, live=live, source=source
        )
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    typer.echo(line)


@rollout_app.command("delete")
def delete(name: str, controller_url: ControllerUrl = DEFAULT_URL) -> None:
    """Forget a rollout (the route stays as it is)."""
    call("DELETE", controller_url, f"/admin/v1/rollouts/{name}")
    typer.echo(f"modelrollout/{name} deleted")


def _action(name: str, action: str, controller_url: str, weight: int | None = None) -> None:
    body: dict[str, Any] = {"action": action}
    if weight is not None:
        body["weight"] = weight
    call("POST", controller_url, f"/admin/v1/rollouts/{name}/actions", body)
    typer.echo(f"modelrollout/{name}: {action} requested")


@rollout_app.command("promote")
def promote(
    name: str,
    full: Annotated[bool, typer.Option("--full", help="Skip every remaining step")] = False,
    controller_url: ControllerUrl = DEFAULT_URL,
) -> None:
    """Leave the current step (pause or analysis) now; --full promotes at once."""
    _action(name, "promote-full" if full else "promote", controller_url)


@rollout_app.command("abort")
def abort(name: str, controller_url: ControllerUrl = DEFAULT_URL) -> None:
    """Send every request back to stable (candidate weight 0, mirror 0)."""
    _action(name, "abort", controller_url)


@rollout_app.command("pause")
def pause(name: str, controller_url: ControllerUrl = DEFAULT_URL) -> None:
    """Hold the rollout where it is."""
    _action(name, "pause", controller_url)


@rollout_app.command("resume")
def resume(name: str, controller_url: ControllerUrl = DEFAULT_URL) -> None:
    """Go on from a pause (or after too many inconclusive checks)."""
    _action(name, "resume", controller_url)


@rollout_app.command("retry")
def retry(name: str, controller_url: ControllerUrl = DEFAULT_URL) -> None:
    """Start an aborted or stopped rollout again from its first step."""
    _action(name, "retry", controller_url)


@rollout_app.command("skip-analysis")
def skip_analysis(name: str, controller_url: ControllerUrl = DEFAULT_URL) -> None:
    """Count the current analysis step as passed."""
    _action(name, "skip-analysis", controller_url)


@rollout_app.command("set-weight")
def set_weight(
    name: str,
    weight: Annotated[int, typer.Argument(min=0, max=100, help="Percent to the candidate")],
    controller_url: ControllerUrl = DEFAULT_URL,
) -> None:
    """Set the canary weight by hand; the rollout pauses until resumed."""
    _action(name, "set-weight", controller_url, weight)
