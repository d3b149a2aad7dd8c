"""Materialisation into a real Redis: incremental, idempotent, sharded; and the CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis
from typer.testing import CliRunner

from sluice.core.errors import InvalidInput
from sluice.feature_store.backends import RedisOnlineStore
from sluice.feature_store.cli import app
from sluice.feature_store.definitions import load_repo
from sluice.feature_store.materialize import materialize
from tests.integration.feature_store.conftest import T0, definitions, write_source
from tests.support.procs import sluice_command

pytestmark = pytest.mark.integration


def at(days: float) -> float:
    return (T0 + pd.to_timedelta(days, unit="D")).timestamp()


def snapshot(url: str) -> dict[bytes, bytes | None]:
    client = redis.Redis.from_url(url)
    return {k: client.get(k) for k in sorted(client.keys("sluice:fs:*"))}


def run(url: str, work: Any) -> Any:
    async def main() -> Any:
        store = RedisOnlineStore.from_url(url, batch_size=7)  # small batches: many pipelines
        try:
            return await work(store)
        finally:
            await store.aclose()

    return asyncio.run(main())


def test_incremental_runs_resume_and_repeats_change_nothing(redis_url: str, tmp_path: Path) -> None:
    source = tmp_path / "s.parquet"
    write_source(source, [("C1", 1, 1, 0.1), ("C1", 2, 2, 0.2), ("C2", 3, 3, 0.3)])
    view = load_repo(definitions(tmp_path / "f.yaml", source)).views[0]

    async def first(store: RedisOnlineStore) -> Any:
        await store.save_views([view], [], [])
        return await materialize(store, [view], end=at(2.5), clock=lambda: at(100))

    (run1,) = run(redis_url, first)
    assert run1.start == at(2.5) - view.ttl and run1.end == at(2.5)
    assert (run1.entities, run1.written) == (1, 1)  # C1's day-2 row; C2's is after the end
    # new rows arrive in the source: one older than the watermark (never picked up again,
    # by design: windows are by event time), and newer ones
    write_source(source, [("C1", 1, 1, 0.1), ("C1", 2, 2, 0.2), ("C2", 3, 3, 0.3),
                          ("C1", 4, 4, 0.4), ("C3", 2.4, 9, 0.9)])  # fmt: skip

    async def second(store: RedisOnlineStore) -> Any:
        runs = await materialize(store, [view], end=at(5), clock=lambda: at(100))
        got = await store.get_online(["activity:calls"], {"customer_id": ["C1", "C2", "C3"]})
        return runs, got

    (run2,), got = run(redis_url, second)
    assert (run2.start, run2.end) == (at(2.5), at(5))
    assert (run2.entities, run2.written, run2.skipped) == (2, 2, 0)
    assert got.values == [[4, 3, None]]
    before = snapshot(redis_url)

    async def again(store: RedisOnlineStore) -> Any:
        return await materialize(store, [view], start=0, end=at(5), clock=lambda: at(100))

    (run3,) = run(redis_url, again)
    assert (run3.entities, run3.written, run3.skipped) == (3, 1, 2)  # C3 was never loaded
    after = snapshot(redis_url)
    assert {k: v for k, v in after.items() if not k.endswith(b"{C3}")} == before
    (run4,) = run(redis_url, again)
    assert (run4.written, run4.skipped) == (0, 3)
    assert snapshot(redis_url) == after


def test_shards_cover_every_entity_exactly_once(redis_url: str, tmp_path: Path) -> None:
    rows = [(f"C{i:04d}", 1.0 + i % 3, i, float(i)) for i in range(500)]
    source = write_source(tmp_path / "s.parquet", rows)
    view = load_repo(definitions(tmp_path / "f.yaml", source)).views[0]

    async def sharded(store: RedisOnlineStore) -> Any:
        await store.save_views([view], [], [])
        runs = [
            (await materialize(store, [view], start=0, end=at(10), shard=(i, 3)))[0]
            for i in range(3)
        ]
        catalog = await store.refresh()
        return runs, catalog

    runs, catalog = run(redis_url, sharded)
    assert sum(r.entities for r in runs) == 500 and all(r.skipped == 0 for r in runs)
    assert all(100 < r.written < 240 for r in runs)
    assert len(snapshot(redis_url)) == 500
    assert sorted(catalog.watermarks) == ["activity|0/3", "activity|1/3", "activity|2/3"]
    assert catalog.materialized_rows == {"activity": 500}


def cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SLUICE_REDIS_URL": url}
    return subprocess.run([*sluice_command(), "features", *args], capture_output=True,
                          text=True, env=env, timeout=120)  # fmt: skip


def test_cli_apply_materialize_list(redis_url: str, tmp_path: Path) -> None:
    source = write_source(tmp_path / "s.parquet", [("C1", 1, 5, 0.5), ("C2", 2, 6, 0.6)])
    bad = tmp_path / "bad.yaml"
    bad.write_text(definitions(tmp_path / "f.yaml", source).read_text().replace("int64", "integer"))
    failed = cli("apply", "-f", str(bad), url=redis_url)
    assert failed.returncode == 1
    assert "views[0] (activity).features[0].dtype: Input should be 'int64'" in failed.stderr
    assert snapshot(redis_url) == {}

    nothing = cli("materialize", "--incremental", url=redis_url)  # before any apply
    assert nothing.returncode == 1
    assert "no feature views are registered in redis://" in nothing.stderr
    assert "sluice features apply -f FILE" in nothing.stderr

    applied = cli("apply", "-f", str(tmp_path / "f.yaml"), url=redis_url)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout == "activity: created\n"
    done = cli("materialize", "--incremental", url=redis_url)
    assert done.returncode == 0, done.stderr
    assert "activity: [" in done.stdout and "2 entities, 2 written, 0 skipped" in done.stdout
    assert "2/2" in done.stderr  # the progress bar is on stderr
    listed = CliRunner().invoke(app, ["list", "--redis-url", redis_url])
    assert "activity  entity=customer_id:string" in listed.output
    assert "materialized_until=" in listed.output and "materialized_until=-" not in listed.output
    assert len(snapshot(redis_url)) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2026-01-01"], "--start needs --end"),
        ([], "give either --start (with --end) or --incremental"),
        (["--incremental", "--start", "2026-01-01"], "give either --start"),
        (["--incremental", "--shard", "3/3"], "--shard: shard '3/3': need 0 <= i < N"),
        (["--start", "soon", "--end", "now"], "--start: 'soon' is not an ISO-8601 timestamp"),
    ],
)
def test_cli_materialize_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["materialize", *args])
    assert isinstance(result.exception, InvalidInput)
    assert message in result.exception.message


def test_apply_updates_resets_changed_views_and_prunes(redis_url: str, tmp_path: Path) -> None:
    source = write_source(tmp_path / "s.parquet", [("C1", 1, 5, 0.5)])
    file = definitions(tmp_path / "f.yaml", source)
    two = tmp_path / "two.yaml"
    text = file.read_text()
    two.write_text(text + text.split("views:")[1].replace("name: activity", "name: other"))
    runner = CliRunner()

    def apply(path: Path, *extra: str) -> str:
        result = runner.invoke(app, ["apply", "-f", str(path), "--redis-url", redis_url, *extra])
        assert result.exit_code == 0, result.output
        return result.output

    assert apply(two) == "activity: created\nother: created\n"
    done = runner.invoke(app, ["materialize", "--incremental", "--redis-url", redis_url])
    assert done.exit_code == 0, done.output
    marks = redis.Redis.from_url(redis_url).hkeys("sluice:fs-registry:{fs}:watermarks")
    assert sorted(marks) == [b"activity", b"other"]
    two.write_text(two.read_text().replace("ttl: 3650d", "ttl: 3000d", 1))
    assert apply(two) == "activity: updated\nother: unchanged\n"
    two.write_text(two.read_text().replace("dtype: int64", "dtype: float64", 1))
    assert apply(two) == (
        "activity: updated (features changed: materialise it again)\nother: unchanged\n"
    )
    assert redis.Redis.from_url(redis_url).hkeys("sluice:fs-registry:{fs}:watermarks") == [b"other"]
    assert apply(file) == "activity: updated (features changed: materialise it again)\n"
    assert apply(file, "--prune") == (
        "other: removed (its online values expire by TTL)\nactivity: unchanged\n"
    )
