"""The benchmark runner's record: every table of a results page as rows."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[3] / "bench"


def runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    found = runner().tables(page)
    assert [t["heading"] for t in found] == ["Router benchmark", "Lookup"]
    assert found[0]["rows"][1] == {
        "what": "through the router",
        "concurrency": "1",
        "p50 ms": "0.624",
    }
    assert found[1]["rows"] == [{"what": "entity in", "p50 ms": "0.829"}]


def test_every_committed_results_page_has_a_table() -> None:
    pages = sorted((BENCH / "results").glob("*.md"))
    assert pages
    tables = runner().tables
    for page in pages:
        assert any(t["rows"] for t in tables(page.read_text())), page.name
