"""`sluice bench` from any folder, as from an installed package: nothing of the checkout
(tests/, examples/, bench/) is read; the pages and the run's record land in
./bench/results/."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from sluice.bench.run import QUICK, tables
from tests.support.procs import sluice_command


@pytest.mark.parametrize("name", ["feature_store", "http_protocol", "predlog_shards"])
def test_a_quick_run_writes_its_page_and_the_record(tmp_path: Path, name: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SLUICE_BENCH_RESULTS"}
    done = subprocess.run(
        [*sluice_command(), "bench", name, "--quick"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"[1/1] {name}: done" in done.stdout  # progress, as it goes
    results = tmp_path / "bench" / "results"
    page = (results / f"{name}.md").read_text()
    assert any(t["rows"] for t in tables(page))
    (record,) = [json.loads(p.read_text()) for p in results.glob("*.json")]
    (run,) = record["benchmarks"]
    assert (run["name"], run["exit_code"], record["quick"]) == (name, 0, True)
    assert run["command"].startswith(f"python -m sluice.bench.{name} {QUICK[name][0]}")
    assert run["tables"] and record["machine"]["cpus"] == os.cpu_count()
