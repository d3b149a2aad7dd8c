"""Where the router's CPU goes: py-spy samples the router while wrk drives it.

The same set-up as sluice.bench.peers (one model server, Redis, the router with the prediction
log on, one V2 row with every feature, or only the customer's id with ``--entity``); py-spy
(installed by this script into its own environment under ``~/.cache/sluice/bench-envs/``,
never a project dependency) samples the router process for the length of a wrk run. The
report groups the samples by where the time is spent (self time per function, and inclusive
time of the stages of a request) and writes bench/results/profile_router.md.

    uv run python -m sluice.bench.profile_router [--concurrency 16] [--duration 20] [--entity]
"""

from __future__ import annotations

import argparse
import collections
import shlex
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from sluice.bench._common import ENVS, RESULTS, environment, need, tree_cpu_seconds
from sluice.bench.model_server import model_server, train, write_bodies
from sluice.bench.peers import (
    TRAIN_ROWS,
    WRK_SCRIPT,
    machine,
    online_features,
    redis,
    router,
    wrk,
)

PY_SPY = "py-spy==0.4.3"
LOOP = "the event loop itself (asyncio, uvloop: polling, callbacks, socket I/O)"
STAGES = {
    "http parse + ASGI (uvicorn, httptools, starlette)": ("uvicorn/", "starlette/"),
    "our endpoint (router/api.py)": ("sluice/router/api.py",),
    "request to the model server (router/http1.py)": ("sluice/router/http1.py",),
    "routing and calls (router/service.py, calls.py)": (
        "sluice/router/service.py",
        "sluice/router/calls.py",
    ),
    "feature lookup (enrich, online store)": ("sluice/router/enrich.py", "feature_store/"),
    "prediction log (router/predlog.py)": ("sluice/router/predlog.py",),
    "metrics (prometheus_client, core/http.py)": ("prometheus_client/", "sluice/core/http.py"),
    "JSON (orjson codec)": ("sluice/router/codec.py",),
    "redis client": ("redis/",),
    LOOP: ("asyncio/", "uvloop/"),
}
"""Stages of a request by the files their frames live in, innermost first: a sample counts
for the stage of the innermost frame that matches (redis before our code that calls it)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=int, default=20, help="seconds sampled")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--entity", action="store_true", help="only the customer id is sent")
    parser.add_argument("--out", type=Path, default=RESULTS / "profile_router.md")
    args = parser.parse_args()
    need("wrk")
    spy = py_spy()
    command = shlex.join(["python", "-m", "sluice.bench.profile_router", *sys.argv[1:]])
    with tempfile.TemporaryDirectory(prefix="sluice-profile-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        print("training the churn model ...", flush=True)
        registry = train(work / "registry", TRAIN_ROWS)
        body = write_bodies(work, registry)[1]
        script = work / "post.lua"
        script.write_text(WRK_SCRIPT)
        upstream, _ = stack.enter_context(model_server(work, registry, "direct"))
        redis_url, _ = stack.enter_context(redis(work))
        if args.entity:
            body = online_features(work, redis_url)
        url, pid = stack.enter_context(router(work, redis_url, registry, upstream))
        url += "/v2/models/churn/infer"
        wrk(url, body, script, args.concurrency, 3)  # warm up
        raw = work / "router.folded"
        print(f"sampling the router for {args.duration} s at c={args.concurrency} ...", flush=True)
        sampler = subprocess.Popen(
            [str(spy), "record", "--pid", str(pid), "--rate", str(args.rate), "--format", "raw",
             "--output", str(raw), "--duration", str(args.duration + 2), "--gil", "--native"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        before = tree_cpu_seconds(pid)
        figures = wrk(url, body, script, args.concurrency, args.duration)
        cpu_us = (tree_cpu_seconds(pid) - before) / figures["requests"] * 1e6
        _, err = sampler.communicate(timeout=120)
        if not raw.exists():
            sys.exit(f"py-spy wrote nothing (it needs ptrace: run as root):\n{err}")
        stacks = folded(raw.read_text())
    report = render(stacks, cpu_us, figures, command, args)
    args.out.write_text(report)
    print(report)


def py_spy() -> Path:
    return environment(ENVS / "py-spy", [PY_SPY]).with_name("py-spy")


def folded(text: str) -> collections.Counter[tuple[str, ...]]:
    """py-spy's raw output (``frame;frame;... count``, outermost first) as stack -> samples.

    >>> folded("main (a.py:1);f (b.py:2) 3\\nmain (a.py:1) 1\\n")
    Counter({('main (a.py:1)', 'f (b.py:2)'): 3, ('main (a.py:1)',): 1})
    """
    stacks: collections.Counter[tuple[str, ...]] = collections.Counter()
    for line in text.splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks[tuple(frames.split(";"))] += int(count)
    return stacks


def stage_of(frames: tuple[str, ...]) -> str:
    """The stage of the innermost frame that belongs to one (native frames of a C extension
    count for the Python code that called it); the event loop's own frames count only when
    no other stage's are on the stack (a redis write through asyncio's streams is redis)."""
    for frame in reversed(frames):
        for name, markers in STAGES.items():
            if name != LOOP and any(m in frame for m in markers):
                return name
    return LOOP if any(m in f for f in frames for m in STAGES[LOOP]) else "other"


def function(frame: str) -> str:
    """``name (path:line)`` -> ``name (short path)``: lines of one function count together."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3.11/", "services/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def render(
    stacks: collections.Counter[tuple[str, ...]],
    cpu_us: float,
    figures: dict[str, float],
    command: str,
    args: argparse.Namespace,
) -> str:
    total = sum(stacks.values()) or 1
    own: collections.Counter[str] = collections.Counter()
    stage: collections.Counter[str] = collections.Counter()
    for frames, n in stacks.items():
        own[function(frames[-1])] += n
        stage[stage_of(frames)] += n
    share = cpu_us / total  # microseconds of router CPU per request, per sample
    lines = [
        "# Where the router's CPU goes",
        "",
        f"- machine: {machine()}",
        f"- command: `{command}`",
        f"- wrk -t1 -c{args.concurrency} for {args.duration} s, "
        + (
            "only the customer id sent (features from the online store)"
            if args.entity
            else "one V2 row with every feature"
        )
        + f"; {figures['requests']:,.0f} requests, p50 {figures['p50']:.2f} ms, "
        f"p99 {figures['p99']:.2f} ms",
        f"- router CPU per request (utime+stime over the run): {cpu_us:.0f} us; py-spy took "
        f"{total:,} samples of the router's Python stacks (idle waits excluded)",
        "",
        "## By stage (the innermost frame of ours or a library's that a sample is in)",
        "",
        "| stage | share of samples | us per request |",
        "| --- | ---: | ---: |",
    ]
    for name, n in stage.most_common():
        lines.append(f"| {name} | {n / total:.1%} | {n * share:.0f} |")
    lines += ["", "## Functions by self time (top 25)", ""]
    lines += ["| function | share of samples | us per request |", "| --- | ---: | ---: |"]
    for name, n in own.most_common(25):
        lines.append(f"| `{name}` | {n / total:.1%} | {n * share:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
