"""Benchmark the router against straight calls to the model server, in one run.

Needs `wrk` on PATH (Debian: `apt-get update && apt-get install -y wrk`) and the project's
environment (`uv sync`). Trains two churn versions with the trainer into a temporary
registry, starts a real Redis, materialises the churn features with the feature store,
serves each version with `sluice serve model-server` and puts `sluice serve router` in
front (uvloop, httptools, no access log, prediction log on). Then, with wrk:

- direct vs through the router, one V2 row with every feature, concurrency 1, 16, 64;
- entity in, prediction out (the router looks the 12 features up), concurrency 1 and 8;
- shadow mode (stable answers, the candidate gets a copy on the same two cores), c=1, 16;
- the upstream client, at concurrency 1 and 64: the router as configured (its own
  HTTP/1.1 client, ``router/http1.py``) beside a second router on aiohttp
  (``SLUICE_ROUTER_UPSTREAM_CLIENT=aiohttp``), same table, same runs; and one minimal
  Starlette proxy each on our http1 client, aiohttp, httpx.AsyncClient and httpx with the
  httpx-aiohttp transport. http1.py exists only while it beats aiohttp here.

With ``--baseline DIR`` (a source tree of another commit, e.g. from ``git archive HEAD
services | tar -x -C DIR``) a second router runs that code on the same Redis and table, and
joins every interleaved comparison: before and after from the same runs.

    uv run python -m sluice.bench.router            # writes bench/results/router.md
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

from sluice.bench._common import (
    RESULTS,
    WRK_SCRIPT,
    churn_views,
    free_port,
    need,
    parse_wrk,
    redis_server,
    serving,
)

TOKEN = "bench"
PROXY_APP = """
import contextlib, os
import aiohttp, httpx
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

UP, KIND = os.environ["BENCH_UPSTREAM"], os.environ["BENCH_CLIENT"]
HEADERS = {"content-type": "application/json"}
state = {}

@contextlib.asynccontextmanager
async def lifespan(app):
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    if KIND == "http1":
        from sluice.router.http1 import Http1Upstream
        state["h"] = Http1Upstream(connections=256, connect_timeout=5.0)
    elif KIND == "httpx":
        state["c"] = httpx.AsyncClient(limits=limits)
    elif KIND == "httpx-aiohttp":
        from httpx_aiohttp import AiohttpTransport
        state["c"] = httpx.AsyncClient(transport=AiohttpTransport(limits=limits))
    else:
        state["s"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit_per_host=256))
    yield
    if "h" in state:
        await state["h"].close()
    elif "c" in state:
        await state["c"].aclose()
    else:
        await state["s"].close()

async def proxy(request):
    body = await request.body()
    if KIND == "http1":
        r = await state["h"].request("POST", UP, body, 10.0, HEADERS)
        return Response(r.body, r.status, media_type="application/json")
    if KIND == "aiohttp":
        async with state["s"].post(UP, data=body, headers=HEADERS) as r:
            return Response(await r.read(), r.status, media_type="application/json")
    r = await state["c"].post(UP, content=body, headers=HEADERS)
    return Response(r.content, r.status_code, media_type="application/json")

app = Starlette(routes=[Route("/infer", proxy, methods=["POST"])], lifespan=lifespan)
"""
TARGETS = {
    "added p50 at c=1 (ms)": 0.5,
    "added p99 at c=1 (ms)": 1.0,
    "router requests/s at c=64": 2500,
    "entity-in p50 at c=1 (ms)": 1.0,
    "entity-in requests/s at c=8": 2000,
    "shadow: primary p50 increase": 0.25,
}
CLIENTS = ("http1", "aiohttp", "httpx") + (
    ("httpx-aiohttp",) if importlib.util.find_spec("httpx_aiohttp") else ()
)
"""The plain proxies' upstream clients, ours first (httpx-aiohttp where it is installed:
a dev dependency of the checkout)."""


@dataclass
class Result:
    name: str
    concurrency: int
    p50_ms: float
    p99_ms: float
    rps: float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    parser.add_argument("--repeat", type=int, default=3, help="wrk runs per scenario")
    parser.add_argument("--out", type=Path, default=RESULTS / "router.md")
    parser.add_argument(
        "--baseline", type=Path, help="a source tree whose services/ runs as a second router"
    )
    args = parser.parse_args()
    need("wrk")
    command = shlex.join(["python", "-m", "sluice.bench.router", *sys.argv[1:]])
    load_before = os.getloadavg()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="sluice-bench-router-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        script = work / "post.lua"
        script.write_text(WRK_SCRIPT)
        registry, customer, row = prepare(work)
        redis_url = stack.enter_context(redis(work))
        materialise(work, redis_url)
        servers = {v: stack.enter_context(model_server(work, registry, v)) for v in ("v1", "v2")}
        router = stack.enter_context(router_process(work, redis_url, registry))
        on_aiohttp = stack.enter_context(
            router_process(work, redis_url, registry, client="aiohttp")
        )
        baseline = None
        if args.baseline is not None:
            source = args.baseline.resolve() / "services"
            baseline = stack.enter_context(router_process(work, redis_url, registry, source))
        full, entity = bodies(work, row, customer)

        def before(name: str, url: str | None, body: Path) -> list[tuple[str, str, Path]]:
            return [] if url is None else [(f"{name} [baseline]", url, body)]

        def run(group: list[tuple[str, str, Path]], concurrency: int) -> None:
            """Interleave the group's scenarios run by run, the order reversed every other
            round (A B C, C B A, ...): the machine's load drifts, so a comparison is only
            fair between neighbouring runs, and no scenario always goes first."""
            runs: dict[str, list[tuple[float, float, float]]] = {n: [] for n, _, _ in group}
            for i in range(args.repeat):
                for name, url, body in group if i % 2 == 0 else group[::-1]:
                    runs[name].append(wrk_once(name, url, body, script, concurrency, args))
            for name, _, _ in group:
                p50, p99, rps = (statistics.median(r[i] for r in runs[name]) for i in range(3))
                print(
                    f"{name:34} c={concurrency:<3} p50={p50:.3f}ms p99={p99:.3f}ms rps={rps:,.0f}",
                    flush=True,
                )
                results.append(Result(name, concurrency, p50, p99, rps))

        infer = "/v2/models/churn/infer"
        set_route(router, servers)
        direct, routed = servers["v1"] + infer, router + infer
        based = baseline + infer if baseline else None
        for c in (1, 16, 64):
            run(
                [
                    ("direct to the model server", direct, full),
                    ("through the router", routed, full),
                    *before("through the router", based, full),
                ],
                c,
            )
        for c in (1, 8):
            run(
                [
                    ("direct, every feature given", direct, full),
                    ("router, entity in (lookup)", routed, entity),
                    *before("router, entity in (lookup)", based, entity),
                ],
                c,
            )
        shadow_route = {"candidate": "v2", "mode": "shadow"}
        targets = [("router", routed), *(() if based is None else (("router [baseline]", based),))]
        for c in (1, 16):
            runs_: dict[str, list[tuple[float, float, float]]] = {}
            for i in range(args.repeat):
                for on in (True, False) if i % 2 == 0 else (False, True):
                    # both routers read the one table in Redis
                    set_route(router, servers, **(shadow_route if on else {}))
                    time.sleep(0.2)
                    for label, url in targets:
                        name = label.replace("router", f"router, shadow {'on' if on else 'off'}")
                        runs_.setdefault(name, []).append(
                            wrk_once(name, url, full, script, c, args)
                        )
            for name, found in runs_.items():
                p50, p99, rps = (statistics.median(r[i] for r in found) for i in range(3))
                print(f"{name:34} c={c:<3} p50={p50:.3f}ms p99={p99:.3f}ms rps={rps:,.0f}")
                results.append(Result(name, c, p50, p99, rps))
        set_route(router, servers)  # shadow off again, whatever the last round left
        time.sleep(0.2)
        with ExitStack() as proxies:
            urls = {k: proxies.enter_context(proxy(work, k, direct)) for k in CLIENTS}
            for c in (1, 64):
                run(
                    [
                        ("the router on http1", routed, full),
                        ("the router on aiohttp", on_aiohttp + infer, full),
                        *((f"plain proxy on {k}", u, full) for k, u in urls.items()),
                        *before("the router on http1", based, full),
                    ],
                    c,
                )
        shadow = shadow_figures(router)
    load_after = os.getloadavg()
    report = render(results, shadow, command, load_before, load_after, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)


def prepare(work: Path) -> tuple[Path, str, dict[str, object]]:
    """Two versions trained by the trainer; a customer and its feature row."""
    from sluice.core.registry import ModelRegistry
    from sluice.trainer.data import generate_churn
    from sluice.trainer.service import train_and_register

    table = generate_churn(5000, seed=7)
    table.to_parquet(work / "churn.parquet")
    registry = ModelRegistry(work / "registry")
    card = train_and_register(table, model="churn", version="v1", registry=registry)
    train_and_register(table, model="churn", version="v2", registry=registry, algorithm="logreg")
    first = table.iloc[0]
    row = {
        f.name: first[f.name].item() if hasattr(first[f.name], "item") else first[f.name]
        for f in card.features
    }
    return registry.root, str(first["customer_id"]), row


def materialise(work: Path, redis_url: str) -> None:
    from sluice.feature_store.backends import RedisOnlineStore
    from sluice.feature_store.definitions import load_repo
    from sluice.feature_store.materialize import materialize

    definitions = work / "features.yaml"
    definitions.write_text(churn_views(work / "churn.parquet"))

    async def load() -> None:
        store = RedisOnlineStore.from_url(redis_url)
        repo = load_repo(definitions)
        await store.refresh()
        await store.save_views(list(repo.views), [], [])
        await materialize(store, list(repo.views), start=0.0, end=time.time())
        await store.aclose()

    asyncio.run(load())


def bodies(work: Path, row: dict[str, object], customer: str) -> tuple[Path, Path]:
    def tensor(name: str, value: object) -> dict[str, object]:
        if isinstance(value, str):
            datatype = "BYTES"
        elif isinstance(value, int):
            datatype = "INT64"
        else:
            datatype = "FP64"
        return {"name": name, "shape": [1, 1], "datatype": datatype, "data": [value]}

    full, entity = work / "full.json", work / "entity.json"
    full.write_bytes(orjson.dumps({"inputs": [tensor(k, v) for k, v in row.items()]}))
    entity.write_bytes(orjson.dumps({"inputs": [tensor("customer_id", customer)]}))
    return full, entity


def set_route(router: str, servers: dict[str, str], **policy: object) -> None:
    body = {"upstreams": servers, "stable": "v1", **policy}
    resp = httpx.put(
        f"{router}/admin/v1/routes/churn", json=body, headers={"authorization": f"Bearer {TOKEN}"}
    )
    resp.raise_for_status()


def shadow_figures(router: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{router}/metrics").text):
        for s in family.samples:
            if s.name.startswith(("sluice_router_shadow", "sluice_router_predlog")):
                key = s.name + "".join(
                    f",{v}" for k, v in sorted(s.labels.items()) if k in ("outcome", "reason")
                )
                out[key] = out.get(key, 0.0) + s.value
    return out


@contextmanager
def redis(work: Path) -> Iterator[str]:
    with redis_server(work / "redis") as (url, _):
        yield url


def sluice() -> str:
    return str(Path(sys.executable).with_name("sluice"))


@contextmanager
def model_server(work: Path, registry: Path, version: str) -> Iterator[str]:
    port = free_port()
    argv = [
        sluice(),
        "serve",
        "model-server",
        "--registry",
        str(registry),
        "--model",
        "churn",
        "--version",
        version,
        "--port",
        str(port),
    ]
    env = {"SLUICE_MODEL_SERVER_LOG_LEVEL": "WARNING"}
    log = work / f"{version}.log"
    with serving(argv, f"http://127.0.0.1:{port}", "/readyz", env, log) as (u, _):
        yield u


@contextmanager
def router_process(
    work: Path, redis_url: str, registry: Path, source: Path | None = None, client: str = "http1"
) -> Iterator[str]:
    """``sluice serve router`` with upstream ``client``; with ``source``, that tree's code
    (on PYTHONPATH)."""
    port = free_port()
    argv = [
        sluice(),
        "serve",
        "router",
        "--redis-url",
        redis_url,
        "--registry",
        str(registry),
        "--port",
        str(port),
        "--log-level",
        "WARNING",
    ]
    env = {"SLUICE_ADMIN_TOKEN": TOKEN, "SLUICE_ROUTER_UPSTREAM_CLIENT": client}
    if source is not None:
        env["PYTHONPATH"] = str(source)
    log = work / f"router-{port}.log"
    with serving(argv, f"http://127.0.0.1:{port}", "/readyz", env, log) as (url, _):
        yield url


@contextmanager
def proxy(work: Path, kind: str, upstream: str) -> Iterator[str]:
    (work / "bench_proxy.py").write_text(PROXY_APP)
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench_proxy:app",
        "--app-dir",
        str(work),
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    env = {"BENCH_UPSTREAM": upstream, "BENCH_CLIENT": kind}
    with serving(argv, f"http://127.0.0.1:{port}", "/infer", env, work / f"{kind}.log") as (url, _):
        yield url + "/infer"


def wrk_once(
    name: str, url: str, body: Path, script: Path, concurrency: int, args: argparse.Namespace
) -> tuple[float, float, float]:
    """One wrk run: (p50 ms, p99 ms, requests/s); any error response fails the benchmark."""
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{args.duration}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        env={**os.environ, "SLUICE_BENCH_BODY": str(body)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out or re.search(r"Socket errors: connect [1-9]|read [1-9]", out):
        raise RuntimeError(f"{name}: wrk saw errors:\n{out}")
    return parse_wrk(out)


def render(
    results: list[Result],
    shadow: dict[str, float],
    command: str,
    load_before: tuple[float, ...],
    load_after: tuple[float, ...],
    args: argparse.Namespace,
) -> str:
    def get(name: str, c: int) -> Result:
        return next(r for r in results if r.name == name and r.concurrency == c)

    def figures(tag: str) -> dict[str, float]:
        """The target figures of the router (tag "") or of the baseline (" [baseline]")."""
        direct1, router1 = get("direct to the model server", 1), get(f"through the router{tag}", 1)
        shadow1 = get(f"router, shadow on{tag}", 1)
        plain1 = get(f"router, shadow off{tag}", 1)
        return {
            "added p50 at c=1 (ms)": router1.p50_ms - direct1.p50_ms,
            "added p99 at c=1 (ms)": router1.p99_ms - direct1.p99_ms,
            "router requests/s at c=64": get(f"through the router{tag}", 64).rps,
            "entity-in p50 at c=1 (ms)": get(f"router, entity in (lookup){tag}", 1).p50_ms,
            "entity-in requests/s at c=8": get(f"router, entity in (lookup){tag}", 8).rps,
            "shadow: primary p50 increase": shadow1.p50_ms / plain1.p50_ms - 1,
        }

    measured = figures("")
    baseline = figures(" [baseline]") if args.baseline is not None else None
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    lines = [
        "# Router benchmark",
        "",
        f"- date: {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"- machine: `nproc` = {os.cpu_count()}, CPU: {cpu}, Python {platform.python_version()}",
        f"- load average before / after (1, 5, 15 min): {_load(load_before)} / "
        f"{_load(load_after)} (other engineers share these two cores)",
        f"- command: `{command}` (wrk -t1, {args.duration}s per run, median of {args.repeat} "
        "runs; the scenarios compared are interleaved run by run, in reverse order every "
        "other round). wrk, the router, both model servers and Redis share the same two cores.",
        "- model: churn v1 (hgb) stable, v2 (logreg) candidate, 12 inputs; one V2 row",
        *(
            [f"- `[baseline]` rows: a second router running the code in `{args.baseline}`"]
            if args.baseline
            else []
        ),
        "",
        "| what | concurrency | p50 ms | p99 ms | requests/s |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r.name} | {r.concurrency} | {r.p50_ms:.3f} | {r.p99_ms:.3f} | {r.rps:,.0f} |"
        for r in results
    ]
    lines += [
        "",
        "## Against the targets (ratios and differences within this run)",
        "",
        "| figure | baseline (same runs) | measured | target | |"
        if baseline
        else "| figure | measured | target | |",
        "| --- | ---: | ---: | ---: | --- |" if baseline else "| --- | ---: | ---: | --- |",
    ]

    def shown(key: str, value: float) -> str:
        if "requests/s" in key:
            return f"{value:,.0f}"
        return f"{value:.0%}" if "increase" in key else f"{value:.3f}"

    for key, target in TARGETS.items():
        value = measured[key]
        higher_is_better = "requests/s" in key
        ok = value >= target if higher_is_better else value <= target
        goal = (
            f">= {target:,}"
            if higher_is_better
            else (f"< {target:.0%}" if "increase" in key else f"<= {target}")
        )
        before = f" {shown(key, baseline[key])} |" if baseline else ""
        lines.append(
            f"| {key} |{before} {shown(key, value)} | {goal} | {'met' if ok else 'MISSED'} |"
        )
    lines += ["", "## Upstream client: our http1 against aiohttp (same runs)", ""]
    for c in (1, 64):
        ours, theirs = get("the router on http1", c), get("the router on aiohttp", c)
        plain = {k: get(f"plain proxy on {k}", c) for k in CLIENTS}
        lines.append(
            f"- c={c}: the router on http1 {ours.rps:,.0f}/s (p50 {ours.p50_ms:.2f} ms) vs on "
            f"aiohttp {theirs.rps:,.0f}/s (p50 {theirs.p50_ms:.2f} ms): "
            f"{ours.rps / theirs.rps - 1:+.0%} requests/s; plain proxy on "
            + ", ".join(f"{k} {r.rps:,.0f}/s (p50 {r.p50_ms:.2f} ms)" for k, r in plain.items())
        )
    lines += ["", "## Shadow and prediction-log counters at the end of the run", ""]
    lines += [f"- `{k}`: {v:,.0f}" for k, v in sorted(shadow.items()) if "_created" not in k]
    return "\n".join(lines) + "\n"


def _load(values: tuple[float, ...]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
