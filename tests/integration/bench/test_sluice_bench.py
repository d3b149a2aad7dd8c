"""`sluice bench` from any folder, as from an installed package: nothing of the checkout
(tests/, examples/, bench/) is read; the pages and the run's record land in
./bench/results/."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from sluice.bench.run import tables
from tests.support.procs import sluice_command


def test_a_quick_run_writes_its_page_and_the_record(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SLUICE_BENCH_RESULTS"}
    done = subprocess.run(
        [*sluice_command(), "bench", "feature_store", "--quick"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[1/1] feature_store: done" in done.stdout  # progress, as it goes
    results = tmp_path / "bench" / "results"
    page = (results / "feature_store.md").read_text()
    assert any(t["rows"] for t in tables(page))
    (record,) = [json.loads(p.read_text()) for p in results.glob("*.json")]
    (run,) = record["benchmarks"]
    assert (run["name"], run["exit_code"], record["quick"]) == ("feature_store", 0, True)
    assert run["command"].startswith("python -m sluice.bench.feature_store --runs 1")
    assert run["tables"] and record["machine"]["cpus"] == os.cpu_count()
