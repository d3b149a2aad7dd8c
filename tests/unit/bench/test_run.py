"""The benchmark runner's record: every table of a results page as rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sluice.bench import run
from sluice.cli import app

RESULTS = Path(__file__).resolve().parents[3] / "bench" / "results"


def test_a_results_page_becomes_rows_under_their_headings() -> None:
    page = """# Router benchmark

- date: today

| what | concurrency | p50 ms |
| --- | ---: | ---: |
| direct to the model server | 1 | 0.318 |
| through the router | 1 | 0.624 |

## Lookup

| what | p50 ms |
| --- | ---: |
| entity in | 0.829 |
"""
    found = run.tables(page)
    assert [t["heading"] for t in found] == ["Router benchmark", "Lookup"]
    assert found[0]["rows"][1] == {
        "what": "through the router",
        "concurrency": "1",
        "p50 ms": "0.624",
    }
    assert found[1]["rows"] == [{"what": "entity in", "p50 ms": "0.829"}]


def test_every_committed_results_page_has_a_table() -> None:
    pages = sorted(RESULTS.glob("*.md"))
    assert pages
    for page in pages:
        assert any(t["rows"] for t in run.tables(page.read_text())), page.name


def test_sluice_bench_names_an_unknown_benchmark_and_runs_nothing(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "peers", "nginx"])
    assert result.exit_code != 0
    assert "no benchmark named nginx; known: model_server, router, peers" in str(result.exception)
    listed = CliRunner().invoke(app, ["bench", "--list"])
    assert listed.exit_code == 0 and listed.output.split() == list(run.QUICK)


def test_a_missing_tool_is_named_with_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from sluice.bench._common import need

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SystemExit) as exited:
        need("wrk")
    assert str(exited.value).startswith("wrk is not on PATH: install it (Debian: apt-get")
