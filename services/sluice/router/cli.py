"""``sluice route set/show``, ``sluice shadow diff`` (against a router's admin API) and
``sluice serve router``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer

from sluice.core.errors import InvalidInput, SluiceError, Unavailable
from sluice.core.tokens import client_token

route_app = typer.Typer(
    help="Read and change a model's route through a router's admin API.", no_args_is_help=True
)
shadow_app = typer.Typer(
    help="Inspect shadow comparisons kept by the router.", no_args_is_help=True
)

RouterUrl = Annotated[
    str, typer.Option("--router-url", envvar="SLUICE_ROUTER_URL", help="The router's base URL.")
]
AdminToken = Annotated[
    str | None,
    typer.Option("--admin-token", envvar="SLUICE_ADMIN_TOKEN", help="The admin API token."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the raw JSON answer.")]


class AdminCallFailed(SluiceError):
    """The router refused an admin call; ``status`` is the router's status."""


def _call(method: str, url: str, token: str | None, body: Any = None) -> Any:
    token = client_token(token)  # "new,old" while a token rotates: the first
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        resp = httpx.request(method, url, headers=headers, json=body, timeout=10)
    except httpx.HTTPError as exc:
        raise Unavailable(f"cannot reach the router at {url}: {exc}") from None
    doc = resp.json() if resp.content else {}
    if resp.status_code >= 400:
        error = doc.get("error") if isinstance(doc, dict) else None
        message = error.get("message") if isinstance(error, dict) else error
        failure = AdminCallFailed(f"{resp.status_code}: {message or resp.text}")
        failure.status = resp.status_code  # type: ignore[misc]
        raise failure
    return doc


def _pairs(values: list[str], what: str) -> list[tuple[str, str]]:
    out = []
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise InvalidInput(f"{what} {value!r} is not VERSION=VALUE")
        out.append((name.strip(), rest.strip()))
    return out


@route_app.command("set")
def route_set(
    model: Annotated[str, typer.Argument(help="The model to route.")],
    router_url: RouterUrl,
    stable: Annotated[str, typer.Option(help="The version that answers by default.")],
    upstream: Annotated[
        list[str] | None,
        typer.Option(
            help="VERSION=URL; repeat; several URLs of one version are replicas. "
            "Omitted: keep the route's current upstreams."
        ),
    ] = None,
    candidate: Annotated[str | None, typer.Option(help="The new version.")] = None,
    mode: Annotated[str | None, typer.Option(help="canary, shadow or bluegreen.")] = None,
    weight: Annotated[int, typer.Option(help="Canary: percent to the candidate.")] = 0,
    mirror_percent: Annotated[
        int | None, typer.Option(help="Percent of traffic copied to the candidate.")
    ] = None,
    on_missing: Annotated[
        str | None, typer.Option(help="Missing, stale or unavailable features: reject or default.")
    ] = None,
    timeout: Annotated[
        list[str] | None, typer.Option(help="VERSION=SECONDS per-call timeout; repeat.")
    ] = None,
    admin_token: AdminToken = None,
    as_json: AsJson = False,
) -> None:
    """Replace MODEL's route; the router refuses an invalid one and changes nothing."""
    base = f"{router_url.rstrip('/')}/admin/v1/routes/{model}"
    current: dict[str, Any] | None
    try:
        current = _call("GET", base, admin_token)
    except AdminCallFailed as exc:
        if exc.status != 404:
            raise
        current = None
    if upstream:
        upstreams: dict[str, dict[str, Any]] = {}
        for version, url in _pairs(upstream, "--upstream"):
            upstreams.setdefault(version, {"urls": []})["urls"].append(url)
    elif current is not None:
        upstreams = {v: {"urls": u["urls"]} for v, u in current["upstreams"].items()}
        for version, up in current["upstreams"].items():
            if up.get("timeout_seconds") is not None:
                upstreams[version]["timeout_seconds"] = up["timeout_seconds"]
    else:
        raise InvalidInput(f"model {model!r} has no route yet: give --upstream VERSION=URL")
    for version, seconds in _pairs(timeout or [], "--timeout"):
        upstreams.setdefault(version, {"urls": []})["timeout_seconds"] = float(seconds)
    body: dict[str, Any] = {
        "upstreams": upstreams, "stable": stable, "candidate": candidate, "mode": mode,
        "weight": weight, "mirror_percent": mirror_percent,
        "on_missing": on_missing or (current or {}).get("on_missing") or "reject",
    }  # fmt: skip
    if current is not None:
        body["if_revision"] = current["revision"]
    _print_route(_call("PUT", base, admin_token, body), as_json)


@route_app.command("show")
def route_show(
    model: Annotated[str, typer.Argument(help="The model.")],
    router_url: RouterUrl,
    admin_token: AdminToken = None,
    as_json: AsJson = False,
) -> None:
    """Show MODEL's route: versions, upstreams, mode, weights, revision."""
    doc = _call("GET", f"{router_url.rstrip('/')}/admin/v1/routes/{model}", admin_token)
    _print_route(doc, as_json)


def _print_route(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return
    mode = doc.get("mode") or "stable only"
    applied = doc.get("applied_revision")
    typer.echo(
        f"model      {doc['model']}  (revision {doc['revision']}, this router applies {applied})"
    )
    typer.echo(f"mode       {mode}")
    typer.echo(f"stable     {doc['stable']}")
    if doc.get("candidate"):
        typer.echo(f"candidate  {doc['candidate']}")
    if doc.get("mode") == "canary":
        typer.echo(f"weight     {doc['weight']}% to the candidate")
    if doc.get("mirror_percent") is not None or doc.get("mode") == "shadow":
        mirror = doc.get("mirror_percent")
        typer.echo(f"mirror     {100 if mirror is None else mirror}% copied to the candidate")
    typer.echo(f"on missing {doc.get('on_missing')}")
    for version, share in doc.get("weights", {}).items():
        up = doc["upstreams"][version]
        extra = f", timeout {up['timeout_seconds']}s" if up.get("timeout_seconds") else ""
        typer.echo(f"  {version:<12} {share * 100:5.1f}%  {', '.join(up['urls'])}{extra}")


@shadow_app.command("diff")
def shadow_diff(
    model: Annotated[str, typer.Argument(help="The model.")],
    router_url: RouterUrl,
    limit: Annotated[int, typer.Option(help="How many of the newest to show.")] = 20,
    admin_token: AdminToken = None,
    as_json: AsJson = False,
) -> None:
    """The newest rows where the shadow candidate disagreed with stable."""
    url = f"{router_url.rstrip('/')}/admin/v1/shadow/{model}/diffs?limit={limit}"
    doc = _call("GET", url, admin_token)
    if as_json:
        typer.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return
    rows = doc.get("disagreements", [])
    if not rows:
        typer.echo(f"no disagreements recorded for {model}")
        return
    for row in rows:
        when = dt.datetime.fromtimestamp(row["ts"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        s, c = row["stable"], row["candidate"]
        typer.echo(
            f"{when}  {row['request_id']}  {s['version']}: {s['label']} ({s['score']:.3f})  "
            f"{c['version']}: {c['label']} ({c['score']:.3f})"
        )
        typer.echo(f"    inputs {orjson.dumps(row['inputs']).decode()}")


def serve(
    redis_url: Annotated[str | None, typer.Option(help="Redis [env SLUICE_REDIS_URL]")] = None,
    feature_store_url: Annotated[
        str | None, typer.Option(help="Feature store service [env ..._FEATURE_STORE_URL]")
    ] = None,
    feature_lookup: Annotated[
        str | None, typer.Option(help="redis, http or off [env ..._FEATURE_LOOKUP]")
    ] = None,
    registry: Annotated[
        Path | None, typer.Option(help="Model registry for model cards [env ..._REGISTRY]")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on [env ..._HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [env ..._PORT]")] = None,
    log_level: Annotated[str | None, typer.Option(help="Log level [env ..._LOG_LEVEL]")] = None,
) -> None:
    """Serve the router (gateway); every option also from env SLUICE_ROUTER_*."""
    from pydantic import ValidationError

    from sluice.router.__main__ import main
    from sluice.router.settings import Settings

    given: dict[str, Any] = {
        "redis_url": redis_url, "feature_store_url": feature_store_url,
        "feature_lookup": feature_lookup, "registry": registry, "host": host, "port": port,
        "log_level": log_level,
    }  # fmt: skip
    try:
        settings = Settings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"router settings: {problems}") from None
    main(settings)
