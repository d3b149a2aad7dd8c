"""``sluice features apply|materialize|list`` and ``sluice serve feature-store``.

Every command finds Redis through ``--redis-url`` or ``SLUICE_REDIS_URL`` (default
``redis://127.0.0.1:6379/0``); ``--redis-cluster`` / ``SLUICE_FEATURE_STORE_REDIS_CLUSTER``
for a Redis Cluster.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from sluice.core.errors import InvalidInput, SluiceError
from sluice.feature_store.settings import Settings

T = TypeVar("T")
app = typer.Typer(help="Feature views: register, materialise, list.", no_args_is_help=True)

RedisUrl = Annotated[
    str | None,
    typer.Option(help="Redis URL [env SLUICE_REDIS_URL, default redis://127.0.0.1:6379/0]"),
]
Cluster = Annotated[
    bool | None,
    typer.Option("--redis-cluster/--no-redis-cluster",
                 help="Redis Cluster [env SLUICE_FEATURE_STORE_REDIS_CLUSTER]"),
]  # fmt: skip


def settings_from(**given: Any) -> Settings:
    """Settings from the environment, CLI options (those given) winning."""
    from pydantic import ValidationError

    try:
        return Settings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"feature store settings: {problems}") from None


def _with_store(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    from sluice.feature_store.backends import RedisOnlineStore

    async def run() -> T:
        store = RedisOnlineStore.from_url(
            settings.redis_url,
            cluster=settings.redis_cluster,
            timeout=max(settings.redis_timeout_seconds, 5.0),
            batch_size=settings.write_batch_size,
        )
        try:
            return await work(store)
        finally:
            await store.aclose()

    return asyncio.run(run())


@app.command()
def apply(
    file: Annotated[Path, typer.Option("-f", "--file", help="Definitions YAML")],
    prune: Annotated[bool, typer.Option(help="Unregister views not in the file")] = False,
    redis_url: RedisUrl = None,
    redis_cluster: Cluster = None,
) -> None:
    """Validate feature views and register them in Redis (every replica sees them)."""
    from sluice.feature_store.definitions import load_repo
    from sluice.feature_store.offline import read_source

    repo = load_repo(file)
    for view in repo.views:
        if Path(view.source.path).is_file():
            read_source(view, limit_rows=1000)  # fails naming the column if it does not fit
        else:
            typer.secho(f"warning: {view.name}: source {view.source.path} is not here; "
                        "materialize will need it", err=True, fg=typer.colors.YELLOW)  # fmt: skip
    settings = settings_from(redis_url=redis_url, redis_cluster=redis_cluster)

    async def work(store: Any) -> None:
        current = (await store.refresh()).views
        changed, unchanged, reset = [], [], []
        for view in repo.views:
            old = current.get(view.name)
            if old == view:
                unchanged.append(view.name)
                continue
            changed.append(view)
            state = "created" if old is None else "updated"
            if old is not None and old.schema_id != view.schema_id:
                state += " (features changed: materialise it again)"
                reset.append(view.name)
            typer.echo(f"{view.name}: {state}")
        removed = sorted(set(current) - set(repo.by_name)) if prune else []
        for name in removed:
            typer.echo(f"{name}: removed (its online values expire by TTL)")
        fields = [f for f in store.catalog.watermarks if f.split("|")[0] in {*reset, *removed}]
        await store.save_views(changed, removed, fields)
        for name in unchanged:
            typer.echo(f"{name}: unchanged")

    _with_store(settings, work)


@app.command()
def materialize(
    start: Annotated[str | None, typer.Option(help="Window start, ISO-8601 (inclusive)")] = None,
    end: Annotated[
        str | None, typer.Option(help="Window end, ISO-8601 or 'now' (exclusive)")
    ] = None,
    incremental: Annotated[
        bool, typer.Option(help="Start each view where its last run ended")
    ] = False,
    view: Annotated[list[str] | None, typer.Option(help="Only this view (repeatable)")] = None,
    shard: Annotated[str | None, typer.Option(help="Only entities of shard i/N")] = None,
    redis_url: RedisUrl = None,
    redis_cluster: Cluster = None,
) -> None:
    """Load the latest value per entity of [start, end) from the sources into Redis."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from sluice.feature_store.keys import parse_shard
    from sluice.feature_store.materialize import materialize as run

    if incremental == (start is not None):
        raise InvalidInput("give either --start (with --end) or --incremental")
    if not incremental and end is None:
        raise InvalidInput("--start needs --end")
    try:
        shard_spec = parse_shard(shard) if shard else None
    except ValueError as exc:
        raise InvalidInput(f"--shard: {exc}") from None
    until = _moment(end, "--end") if end else time.time()
    since = _moment(start, "--start") if start else None
    settings = settings_from(redis_url=redis_url, redis_cluster=redis_cluster)
    bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    console=Console(stderr=True))  # fmt: skip
    tasks: dict[str, Any] = {}

    def progress(name: str, done: int, total: int) -> None:
        if name not in tasks:
            tasks[name] = bars.add_task(name, total=total)
        bars.update(tasks[name], completed=done, total=total)

    async def work(store: Any) -> list[Any]:
        from sluice.feature_store.backends import redact

        catalog = await store.refresh()
        if not catalog.views:  # e.g. Redis came back empty: a silent success would mislead
            raise InvalidInput(
                f"no feature views are registered in {redact(settings.redis_url)}: nothing to "
                "materialise; run sluice features apply -f FILE first"
            )
        names = view or sorted(catalog.views)
        unknown = [n for n in names if n not in catalog.views]
        if unknown:
            raise InvalidInput(f"--view {unknown[0]!r} is not registered (run features apply)")
        with bars:
            return await run(store, [catalog.views[n] for n in names], start=since, end=until,
                             shard=shard_spec, progress=progress)  # fmt: skip

    for r in _with_store(settings, work):
        window = f"[{_iso(r.start)}, {_iso(r.end)})"
        typer.echo(f"{r.view}: {window} {r.entities} entities, {r.written} written, "
                   f"{r.skipped} skipped (stored value as new or newer)")  # fmt: skip


@app.command("list")
def list_views(redis_url: RedisUrl = None, redis_cluster: Cluster = None) -> None:
    """Registered views: entity, features, ttl, materialised until."""
    from sluice.feature_store.keys import effective_watermark

    settings = settings_from(redis_url=redis_url, redis_cluster=redis_cluster)
    catalog = _with_store(settings, lambda store: store.refresh())
    if not catalog.views:
        typer.echo("no feature views registered (sluice features apply -f FILE)")
    for name, v in sorted(catalog.views.items()):
        until = effective_watermark(name, catalog.watermarks)
        typer.echo(f"{name}  entity={v.entity.join_key}:{v.entity.dtype}  ttl={v.ttl}s  "
                   f"features={','.join(f.name for f in v.features)}  "
                   f"materialized_until={_iso(until) if until is not None else '-'}")  # fmt: skip


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address [env SLUICE_FEATURE_STORE_HOST]")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port [env ..._PORT, default 8001]")] = None,
    redis_url: RedisUrl = None,
    redis_cluster: Cluster = None,
    log_level: Annotated[str | None, typer.Option(help="Log level [env ..._LOG_LEVEL]")] = None,
) -> None:
    """Serve online features: /v1/features/*, Feast's /get-online-features, /metrics."""
    from sluice.feature_store.__main__ import main

    main(settings_from(host=host, port=port, redis_url=redis_url, redis_cluster=redis_cluster,
                       log_level=log_level))  # fmt: skip


def _moment(text: str, option: str) -> float:
    if text == "now":
        return time.time()
    from sluice.feature_store.service import parse_timestamp

    try:
        return parse_timestamp(text, option) / 1e6
    except SluiceError as exc:
        raise InvalidInput(exc.message) from None


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
