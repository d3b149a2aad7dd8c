"""Run every benchmark in one go and record the run: ``sluice bench`` (or ``make bench``).

Each benchmark runs as its own process, one after the other (they would compete for the
cores otherwise), and writes its own page under ``bench/results/<name>.md`` as it always
does: every figure there sits beside its baseline measured in the same run (bare
onnxruntime, bare Redis, a direct model-server call, nginx, MLServer, KServe). This runner
then writes the run as a whole:

- ``bench/results/<date>.json``: the machine, and per benchmark its command, exit code,
  seconds taken and every table of its page as rows (header -> cell);
- ``bench/results/<date>.md``: the machine and the commands, then every page in turn.

    sluice bench                  # everything (about 30 minutes on 2 cores); make bench
    sluice bench peers router     # some of them
    sluice bench --quick          # fewer, shorter rounds: a smoke run

Each benchmark also runs alone with its own options: ``python -m sluice.bench.peers --help``.
Pages go to ``bench/results/`` under the current folder (``SLUICE_BENCH_RESULTS`` moves
them); the tools a benchmark needs (wrk, nginx) are named when missing.

A benchmark that fails is reported with the tail of its output and the run goes on; the
runner exits non-zero at the end if any failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sluice.bench._common import RESULTS

QUICK: dict[str, list[str]] = {
    "model_server": ["--repeat", "1", "--duration", "2"],
    "router": ["--repeat", "1", "--duration", "2"],
    "peers": ["--repeat", "1", "--duration", "2"],
    "scale": ["--repeat", "1", "--duration", "2", "--processes", "1", "2"],
    "feature_store": ["--runs", "1", "--requests", "500"],
    "drift_monitor": ["--runs", "1"],
    "rollout": ["--rounds", "1"],
    "explain": ["--rows", "2"],
    "http_protocol": ["--rounds", "1", "--requests", "2000"],
    "predlog_shards": ["--records", "3000", "--rounds", "1"],
}
"""Every benchmark this runner knows, with the arguments of a quick run."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: all of {', '.join(QUICK)})")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    args = parser.parse_args()
    if unknown := [n for n in args.names if n not in QUICK]:
        parser.error(f"no benchmark named {', '.join(unknown)}; known: {', '.join(QUICK)}")
    if failed := run_all(args.names or list(QUICK), quick=args.quick):
        sys.exit(f"failed: {', '.join(failed)}")


def run_all(names: list[str], *, quick: bool) -> list[str]:
    """Run ``names`` one after the other, write the run's record; the ones that failed."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    runs: list[dict[str, Any]] = []
    for i, name in enumerate(names, 1):
        argv = [sys.executable, "-m", f"sluice.bench.{name}", *(QUICK[name] if quick else [])]
        print(f"[{i}/{len(names)}] {name}: {' '.join(argv[1:])}", flush=True)
        started = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        seconds = time.monotonic() - started
        page = RESULTS / f"{name}.md"
        ok = proc.returncode == 0
        print(f"[{i}/{len(names)}] {name}: {'done' if ok else 'FAILED'} in {seconds:.0f} s",
              flush=True)  # fmt: skip
        if not ok:
            print((proc.stdout + proc.stderr)[-3000:], file=sys.stderr)
        runs.append({
            "name": name,
            "command": " ".join(["python", *argv[1:]]),
            "exit_code": proc.returncode,
            "seconds": round(seconds, 1),
            "page": str(page),
            "tables": tables(page.read_text()) if ok and page.exists() else [],
        })  # fmt: skip
    record = {"date": stamp, "machine": machine(), "quick": quick, "benchmarks": runs}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stamp}.json").write_text(json.dumps(record, indent=1) + "\n")
    (RESULTS / f"{stamp}.md").write_text(summary(record))
    print(f"wrote {RESULTS / stamp}.json and {RESULTS / stamp}.md")
    return [r["name"] for r in runs if r["exit_code"]]


def tables(page: str) -> list[dict[str, Any]]:
    """Every markdown table of a results page as rows of header -> cell, under the
    heading it follows.

    >>> tables("## c=1\\n\\n| what | p50 ms |\\n| --- | ---: |\\n| direct | 0.3 |\\n")
    [{'heading': 'c=1', 'rows': [{'what': 'direct', 'p50 ms': '0.3'}]}]
    """
    found: list[dict[str, Any]] = []
    heading, header = "", None
    for line in page.splitlines():
        if line.startswith("#"):
            heading, header = line.lstrip("#").strip(), None
        elif not line.startswith("|"):
            header = None
        elif header is None:
            header = cells(line)
            found.append({"heading": heading, "rows": []})
        elif not set(line) <= set("|-: "):
            found[-1]["rows"].append(dict(zip(header, cells(line), strict=False)))
    return found


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def machine() -> dict[str, Any]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "system": platform.platform(), "load_average": os.getloadavg()}  # fmt: skip


def summary(record: dict[str, Any]) -> str:
    m = record["machine"]
    lines = [
        f"# Benchmarks, {record['date']}" + (" (quick run)" if record["quick"] else ""),
        "",
        f"- machine: {m['cpus']} CPUs, {m['cpu']}, Python {m['python']}, {m['system']}",
        f"- load average at the end: {', '.join(f'{x:.2f}' for x in m['load_average'])}",
        "",
        "| benchmark | command | result | seconds |",
        "| --- | --- | --- | ---: |",
    ]
    for r in record["benchmarks"]:
        result = "ok" if r["exit_code"] == 0 else f"failed ({r['exit_code']})"
        lines.append(f"| {r['name']} | `{r['command']}` | {result} | {r['seconds']:.0f} |")
    for r in record["benchmarks"]:
        page = Path(r["page"])
        if r["exit_code"] == 0 and page.exists():
            lines += ["", page.read_text().replace("\n# ", "\n## ").replace("# ", "## ", 1)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
