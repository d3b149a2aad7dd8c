"""Benchmark our model server and router beside their peers, on the same model, in one run.

Anyone can rerun this to check our claims. Needs `wrk` and `nginx` on PATH (Debian:
`apt-get update && apt-get install -y wrk nginx-light`, or `scripts/tools wrk nginx`) and the
project's environment (`uv sync`). The peers are installed by this script into their own
environments under ``~/.cache/sluice/bench-envs/`` (never a project dependency): MLServer
and KServe's model server, each with onnxruntime (the version we use), uvloop and
httptools. One churn model is trained by our trainer; the same ``model.onnx`` is then
served by:

- our model server (``sluice serve model-server``, inference on the event loop), on
  asyncio's own loop (its default) and once more on uvloop (the ``event_loop`` setting);
- MLServer, a custom runtime that runs the file with onnxruntime (one worker, no parallel
  inference pool, metrics and access logs off);
- KServe's model server, a ``kserve.Model`` that runs it with onnxruntime (one worker, gRPC
  and latency logging off, access log off);
- nginx (one worker process, access log off, upstream keepalive) in front of our model
  server: the plain reverse proxy;
- the floor under any Python gateway on our stack (``sluice.bench.floor_proxy``: our HTTP
  layers forwarding the body as it is, nothing else) in front of the same model server;
- our router in front of the same model server (prediction log on, as deployed), and two
  more with one setting back at its old value: Python's default GC (``gc_freeze`` off) and
  uvicorn's ASGI cycle for the inference path (``hot_protocol`` off);
- end to end: the same router given only the customer's id, its features read from the
  online store (Redis, materialised from the training table), then the model server.

Every server is up at once and wrk visits them in turn, round after round (the machine is
shared: they see the same background load). One V2 request of one row with every feature,
concurrency 1, 16 and 64. Server CPU per request (user + system time of each server's whole
process tree over the run, divided by requests) leads every table: of all the figures it
moves least when other programs compete for the cores. Latency is p50, p99 and p99.9.

    uv run python -m sluice.bench.peers            # writes bench/results/peers.md and peers.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from sluice.bench import _common
from sluice.bench._common import (
    ENVS,
    RESULTS,
    environment,
    free_port,
    need,
    redis_server,
    serving,
    tree_cpu_seconds,
)
from sluice.bench.model_server import model_server, train, write_bodies

MLSERVER = "mlserver==1.7.1"
KSERVE = "kserve==0.21.0"
CONCURRENCY = (1, 16, 64)
TRAIN_ROWS = 5000
TOKEN = "bench"
WRK_SCRIPT = (
    _common.WRK_SCRIPT
    + """done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("REQUESTS %d\\n", summary.requests))
  io.write(string.format("ERRORS %d\\n", e.connect + e.read + e.write + e.status + e.timeout))
  for _, p in ipairs({50, 99, 99.9}) do
    io.write(string.format("P %g %d\\n", p, latency:percentile(p)))
  end
end
"""
)
"""wrk's Lua, also printing the requests, errors and latency percentiles at the end."""
MLSERVER_RUNTIME = '''
import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput

_DTYPES = {"FP64": np.float64, "FP32": np.float32, "INT64": np.int64}


class OnnxModel(MLModel):
    """One onnxruntime session; V2 tensors in, the model's outputs out."""

    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self._session = ort.InferenceSession(self.settings.parameters.uri, options)
        self._kinds = {i.name: i.type for i in self._session.get_inputs()}
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feed = {}
        for tensor in payload.inputs:
            data = list(tensor.data)
            if tensor.datatype == "BYTES":
                data = [v.decode() if isinstance(v, bytes) else str(v) for v in data]
                array = np.array(data, dtype=object)
            else:
                array = np.array(data, dtype=_DTYPES[tensor.datatype])
            if self._kinds[tensor.name] == "tensor(double)":
                array = array.astype(np.float64)
            feed[tensor.name] = array.reshape(tensor.shape)
        names = [o.name for o in self._session.get_outputs()]
        label, probabilities = self._session.run(names, feed)[:2]
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                ResponseOutput(name="label", shape=list(label.shape), datatype="INT64",
                               data=label.astype(np.int64).ravel().tolist()),
                ResponseOutput(name="probabilities", shape=list(probabilities.shape),
                               datatype="FP32", data=probabilities.ravel().tolist()),
            ],
        )
'''
KSERVE_SERVER = '''
import sys

import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer


class OnnxModel(Model):
    """One onnxruntime session; V2 tensors in, the model's outputs out."""

    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self._session = ort.InferenceSession(path, options)
        self._kinds = {i.name: i.type for i in self._session.get_inputs()}
        self.ready = True

    def predict(self, payload: InferRequest, headers=None) -> InferResponse:
        feed = {}
        for tensor in payload.inputs:
            array = tensor.as_numpy()
            if tensor.datatype == "BYTES":
                array = np.array([v.decode() if isinstance(v, bytes) else str(v)
                                  for v in array.ravel()], dtype=object)
            if self._kinds[tensor.name] == "tensor(double)":
                array = array.astype(np.float64)
            feed[tensor.name] = array.reshape(tensor.shape)
        names = [o.name for o in self._session.get_outputs()]
        label, probabilities = self._session.run(names, feed)[:2]
        outputs = [
            InferOutput(name="label", shape=list(label.shape), datatype="INT64",
                        data=label.astype(np.int64).ravel().tolist()),
            InferOutput(name="probabilities", shape=list(probabilities.shape),
                        datatype="FP32", data=probabilities.ravel().tolist()),
        ]
        return InferResponse(model_name=self.name, infer_outputs=outputs,
                             response_id=payload.id or "")


if __name__ == "__main__":
    ModelServer().start([OnnxModel("churn", sys.argv[-1])])
'''
NGINX_CONF = """
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {work}/nginx-body;
    proxy_temp_path {work}/nginx-proxy;
    upstream model_server {{ server {upstream}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://model_server;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


@dataclass
class Target:
    name: str
    url: str
    pids: dict[str, int]
    """Which process trees to charge, by role: ``server``, or ``proxy`` + ``upstream``
    (+ ``redis`` end to end)."""
    body: Path | None = None
    """What to post, when not the one-row body every other target gets."""


@dataclass
class Row:
    name: str
    concurrency: int
    cpu_us: dict[str, float]
    p50_ms: float
    p99_ms: float
    p999_ms: float
    rps: float
    requests: int
    rounds: list[dict[str, float]] = field(default_factory=list)

    @property
    def total_cpu_us(self) -> float:
        return sum(self.cpu_us.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--repeat", type=int, default=5, help="wrk runs per target and level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY))
    parser.add_argument("--out", type=Path, default=RESULTS / "peers.md")
    args = parser.parse_args()
    need("wrk", "nginx")
    command = shlex.join(["python", "-m", "sluice.bench.peers", *sys.argv[1:]])
    mlserver_python = peer_env("mlserver", MLSERVER)
    kserve_python = peer_env("kserve", KSERVE)
    load_before = os.getloadavg()
    rows: list[Row] = []
    work = Path(tempfile.mkdtemp(prefix="sluice-peers-"))
    with ExitStack() as stack:
        failed = False  # the folder (the servers' logs) is kept when the run fails
        stack.callback(lambda: None if failed else shutil.rmtree(work))
        print("training the churn model with our trainer ...", flush=True)
        registry = train(work / "registry", TRAIN_ROWS)
        body = write_bodies(work, registry)[1]
        onnx = registry / "churn" / "v1" / "model.onnx"
        script = work / "post.lua"
        script.write_text(WRK_SCRIPT)
        print("starting our model server, MLServer, KServe, nginx, our router ...", flush=True)
        ours, ours_pid = stack.enter_context(model_server(work, registry, "direct"))
        uv, uv_pid = stack.enter_context(model_server(work, registry, "direct", loop="uvloop"))
        ml_url, ml_pid = stack.enter_context(mlserver(work, mlserver_python, onnx))
        ks_url, ks_pid = stack.enter_context(kserve(work, kserve_python, onnx))
        ng_url, ng_pid = stack.enter_context(nginx(work, ours))
        redis_url, redis_pid = stack.enter_context(redis(work))
        entity = online_features(work, redis_url)
        rt_url, rt_pid = stack.enter_context(router(work, redis_url, registry, ours))
        gc_url, gc_pid = stack.enter_context(
            router(work, redis_url, registry, ours, SLUICE_ROUTER_GC_FREEZE="false")
        )
        asgi_url, asgi_pid = stack.enter_context(
            router(work, redis_url, registry, ours, SLUICE_ROUTER_HOT_PROTOCOL="false")
        )
        fl_url, fl_pid = stack.enter_context(floor_proxy(work, ours))
        infer = "/v2/models/churn/infer"
        targets = [
            Target("sluice model server", ours + infer, {"server": ours_pid}),
            Target("sluice model server on uvloop", uv + infer, {"server": uv_pid}),
            Target(f"MLServer {MLSERVER.split('==')[1]}", ml_url + infer, {"server": ml_pid}),
            Target(f"KServe {KSERVE.split('==')[1]}", ks_url + infer, {"server": ks_pid}),
            Target(
                "nginx -> sluice model server",
                ng_url + infer,
                {"proxy": ng_pid, "upstream": ours_pid},
            ),
            Target(
                "Python floor: our HTTP layers, forwarding only -> sluice model server",
                fl_url + infer,
                {"proxy": fl_pid, "upstream": ours_pid},
            ),
            Target(
                "sluice router -> sluice model server",
                rt_url + infer,
                {"proxy": rt_pid, "upstream": ours_pid},
            ),
            Target(
                "sluice router, Python's default GC -> sluice model server",
                gc_url + infer,
                {"proxy": gc_pid, "upstream": ours_pid},
            ),
            Target(
                "sluice router, uvicorn's ASGI cycle -> sluice model server",
                asgi_url + infer,
                {"proxy": asgi_pid, "upstream": ours_pid},
            ),
            Target(
                "end to end: customer id -> router + online store -> sluice model server",
                rt_url + infer,
                {"proxy": rt_pid, "upstream": ours_pid, "redis": redis_pid},
                entity,
            ),
        ]
        for target in targets:  # same answer from every server before anything is timed
            check_answer(target, target.body or body)
        try:
            for concurrency in args.concurrency:
                rows += measure(targets, body, script, concurrency, args)
        except RuntimeError:
            failed = True
            print(f"the servers' logs are kept in {work}", file=sys.stderr)
            raise
    load_after = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(rows, command, load_before, load_after, args))
    args.out.with_suffix(".json").write_text(
        json.dumps(
            {"command": command, "date": datetime.now(UTC).isoformat(timespec="seconds"),
             "machine": machine(), "rows": [asdict(r) for r in rows]},
            indent=1,
        ) + "\n"
    )  # fmt: skip
    print(args.out.read_text())


def peer_env(name: str, requirement: str) -> Path:
    """A venv of its own for a peer, made once (a few seconds from the registry)."""
    import onnxruntime

    wanted = [requirement, f"onnxruntime=={onnxruntime.__version__}", "uvloop", "httptools"]
    return environment(ENVS / name, wanted)


@contextmanager
def mlserver(work: Path, python: Path, onnx: Path) -> Iterator[tuple[str, int]]:
    models = work / "mlserver"
    (models / "churn").mkdir(parents=True)
    (models / "churn" / "peer_runtime.py").write_text(MLSERVER_RUNTIME)
    (models / "churn" / "model-settings.json").write_text(json.dumps({
        "name": "churn", "implementation": "peer_runtime.OnnxModel",
        "parameters": {"uri": str(onnx)},
    }))  # fmt: skip
    port = free_port()
    (models / "settings.json").write_text(json.dumps({
        "http_port": port, "grpc_port": free_port(), "metrics_port": free_port(),
        "parallel_workers": 0, "debug": False, "metrics_endpoint": None,
    }))  # fmt: skip
    argv = [str(python.with_name("mlserver")), "start", str(models)]
    env = {"PYTHONPATH": str(models / "churn")}
    url = f"http://127.0.0.1:{port}"
    with serving(argv, url, "/v2/models/churn/ready", env, work / "mlserver.log") as served:
        yield served


@contextmanager
def kserve(work: Path, python: Path, onnx: Path) -> Iterator[tuple[str, int]]:
    script = work / "kserve_peer.py"
    script.write_text(KSERVE_SERVER)
    port = free_port()
    argv = [str(python), str(script), "--http_port", str(port), "--grpc_port", str(free_port()),
            "--enable_grpc", "false", "--workers", "1", "--enable_latency_logging", "false",
            "--configure_logging", "false", str(onnx)]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with serving(argv, url, "/v2/models/churn/ready", {}, work / "kserve.log") as served:
        yield served


@contextmanager
def nginx(work: Path, upstream: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    conf = work / "nginx.conf"
    conf.write_text(NGINX_CONF.format(work=work, upstream=upstream.split("//")[1], port=port))
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    argv = [binary, "-p", str(work), "-c", str(conf)]
    url = f"http://127.0.0.1:{port}"
    with serving(argv, url, "/readyz", {}, work / "nginx.log") as served:
        yield served


@contextmanager
def floor_proxy(work: Path, upstream: str) -> Iterator[tuple[str, int]]:
    """``sluice.bench.floor_proxy``: what a Python gateway on our stack costs doing
    nothing but forwarding."""
    port = free_port()
    argv = [sys.executable, "-m", "sluice.bench.floor_proxy", "--port", str(port),
            "--upstream", upstream]  # fmt: skip
    with serving(argv, f"http://127.0.0.1:{port}", "/readyz", {}, work / "floor.log") as served:
        yield served


@contextmanager
def redis(work: Path) -> Iterator[tuple[str, int]]:
    with redis_server(work / "redis") as served:
        yield served


def online_features(work: Path, redis_url: str) -> Path:
    """The training table's features materialised into the online store; the V2 body of
    one request that names only its customer."""
    from sluice.bench.router import materialise
    from sluice.trainer.data import generate_churn

    table = generate_churn(TRAIN_ROWS, seed=7)  # the table model_server.train trains on
    table.to_parquet(work / "churn.parquet")
    materialise(work, redis_url)
    entity = work / "entity.json"
    entity.write_text(json.dumps({"inputs": [
        {"name": "customer_id", "shape": [1, 1], "datatype": "BYTES",
         "data": [str(table["customer_id"].iloc[0])]}]}))  # fmt: skip
    return entity


@contextmanager
def router(
    work: Path, redis_url: str, registry: Path, upstream: str, **more: str
) -> Iterator[tuple[str, int]]:
    """``sluice serve router`` as deployed (prediction log on), one route to ``upstream``;
    ``more`` environment variables on top."""
    port = free_port()
    argv = [str(Path(sys.executable).with_name("sluice")), "serve", "router",
            "--redis-url", redis_url, "--registry", str(registry), "--port", str(port),
            "--log-level", "WARNING"]  # fmt: skip
    # the upstream timeout of wrk's own (10 s): a queue at c=64 on a busy machine is latency
    # to measure, not the router's 2 s default giving up (504)
    env = {"SLUICE_ADMIN_TOKEN": TOKEN, "SLUICE_ROUTER_UPSTREAM_TIMEOUT_SECONDS": "10", **more}
    log = work / f"router-{port}.log"
    with serving(argv, f"http://127.0.0.1:{port}", "/readyz", env, log) as served:
        response = httpx.put(
            f"{served[0]}/admin/v1/routes/churn",
            json={"upstreams": {"v1": upstream}, "stable": "v1"},
            headers={"authorization": f"Bearer {TOKEN}"},
        )
        response.raise_for_status()
        yield served


def check_answer(target: Target, body: Path) -> None:
    response = httpx.post(target.url, content=body.read_bytes(),
                          headers={"content-type": "application/json"}, timeout=30)  # fmt: skip
    if response.status_code != 200:
        raise RuntimeError(f"{target.name}: {response.status_code} {response.text[:500]}")
    names = {o["name"] for o in response.json()["outputs"]}
    if "label" not in names:
        raise RuntimeError(f"{target.name}: no label in {response.text[:500]}")


def wrk(url: str, body: Path, script: Path, concurrency: int, duration: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{duration}s", "--timeout", "10s",
         "-s", str(script), url],
        env={**os.environ, "SLUICE_BENCH_BODY": str(body)},
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    figures: dict[str, float] = {}
    for line in out.splitlines():
        parts = line.split()
        if parts[:1] == ["REQUESTS"]:
            figures["requests"] = float(parts[1])
        elif parts[:1] == ["ERRORS"]:
            figures["errors"] = float(parts[1])
        elif parts[:1] == ["P"]:
            figures[f"p{parts[1]}"] = float(parts[2]) / 1000  # us -> ms
    if figures.get("errors", 1) or "requests" not in figures:
        raise RuntimeError(f"{url}: wrk saw errors:\n{out}")
    figures["rps"] = figures["requests"] / duration
    return figures


def measure(
    targets: list[Target], body: Path, script: Path, concurrency: int, args: argparse.Namespace
) -> list[Row]:
    rounds: dict[str, list[dict[str, float]]] = {t.name: [] for t in targets}
    for n in range(args.repeat):
        print(f"  c={concurrency} round {n + 1}/{args.repeat}", file=sys.stderr, flush=True)
        for target in targets:
            before = {role: tree_cpu_seconds(pid) for role, pid in target.pids.items()}
            try:
                figures = wrk(target.url, target.body or body, script, concurrency, args.duration)
            except RuntimeError as error:
                raise RuntimeError(f"{target.name} at c={concurrency}: {error}") from None
            for role, pid in target.pids.items():
                used = tree_cpu_seconds(pid) - before[role]
                figures[f"cpu_{role}_us"] = used / figures["requests"] * 1e6
            rounds[target.name].append(figures)
    rows = []
    for target in targets:
        runs = rounds[target.name]

        def median(key: str, runs: list[dict[str, float]] = runs) -> float:
            return statistics.median(r[key] for r in runs)

        row = Row(
            name=target.name,
            concurrency=concurrency,
            cpu_us={role: median(f"cpu_{role}_us") for role in target.pids},
            p50_ms=median("p50"),
            p99_ms=median("p99"),
            p999_ms=median("p99.9"),
            rps=median("rps"),
            requests=int(sum(r["requests"] for r in runs)),
            rounds=runs,
        )
        print(f"c={concurrency:<3} {row.name:38} cpu={row.total_cpu_us:6.0f}us "
              f"p50={row.p50_ms:.3f} p99={row.p99_ms:.3f} p99.9={row.p999_ms:.3f} ms "
              f"{row.rps:,.0f}/s", flush=True)  # fmt: skip
        rows.append(row)
    return rows


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown",
    )  # fmt: skip
    return f"`nproc` = {os.cpu_count()}, CPU: {cpu}, Python {platform.python_version()}"


def render(
    rows: list[Row],
    command: str,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
    args: argparse.Namespace,
) -> str:
    def load(values: tuple[float, float, float]) -> str:
        return ", ".join(f"{v:.2f}" for v in values)

    lines = [
        "# Peers: the same model.onnx behind our model server, MLServer and KServe; nginx "
        "and our router in front of our model server",
        "",
        f"- date: {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"- machine: {machine()}",
        f"- load average before / after (1, 5, 15 min): {load(load_before)} / "
        f"{load(load_after)} (other programs share these cores)",
        f"- command: `{command}` (wrk -t1, {args.duration} s per run, medians of "
        f"{args.repeat} rounds; targets visited in turn each round; zero errors or the run fails)",
        f"- peers: {MLSERVER}, {KSERVE}, nginx {nginx_version()}; each with onnxruntime, uvloop "
        "and httptools, one worker, access logs off",
        "- request: one V2 row of the churn model's 12 inputs (8 double, 4 string)",
        "",
        "Server CPU is user + system time of each process tree during the runs, per request.",
        "For a proxy row it is split: the proxy's own, then the model server behind it.",
    ]
    for concurrency in sorted({r.concurrency for r in rows}):
        lines += [
            "",
            f"## Concurrency {concurrency}",
            "",
            "| what | server CPU us/request | of which proxy | p50 ms | p99 ms | p99.9 ms "
            "| requests/s |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in (r for r in rows if r.concurrency == concurrency):
            proxy = f"{r.cpu_us['proxy']:.0f}" if "proxy" in r.cpu_us else "-"
            lines.append(
                f"| {r.name} | {r.total_cpu_us:.0f} | {proxy} | {r.p50_ms:.3f} | {r.p99_ms:.3f} "
                f"| {r.p999_ms:.3f} | {r.rps:,.0f} |"
            )
    lines += ["", "## Ratios within this run", ""]
    lines += list(ratios(rows))
    return "\n".join(lines) + "\n"


def ratios(rows: list[Row]) -> Iterator[str]:
    def find(prefix: str, concurrency: int) -> Row | None:
        return next(
            (r for r in rows if r.name.startswith(prefix) and r.concurrency == concurrency), None
        )

    for concurrency in sorted({r.concurrency for r in rows}):
        ours = find("sluice model server", concurrency)
        ml, ks = find("MLServer", concurrency), find("KServe", concurrency)
        ng, rt = find("nginx", concurrency), find("sluice router", concurrency)
        uv = find("sluice model server on uvloop", concurrency)
        untuned = find("sluice router, Python's default GC", concurrency)
        asgi = find("sluice router, uvicorn's ASGI cycle", concurrency)
        e2e = find("end to end", concurrency)
        floor = find("Python floor", concurrency)
        if e2e and ours:
            yield (
                f"- c={concurrency}: end to end (customer id in) p50 {e2e.p50_ms:.2f} ms, p99 "
                f"{e2e.p99_ms:.2f} ms, {e2e.total_cpu_us:.0f} us of CPU a request (router "
                f"{e2e.cpu_us['proxy']:.0f}, Redis {e2e.cpu_us['redis']:.0f}, model server "
                f"{e2e.cpu_us['upstream']:.0f}), no errors in {e2e.requests:,} requests"
            )
        if ours and uv:
            yield (
                f"- c={concurrency}: our model server on asyncio's loop (the default) against "
                f"uvloop: CPU per request {ours.total_cpu_us / uv.total_cpu_us:.2f}x, p50 "
                f"{ours.p50_ms:.2f} vs {uv.p50_ms:.2f} ms, p99/p50 "
                f"{ours.p99_ms / ours.p50_ms:.1f} vs {uv.p99_ms / uv.p50_ms:.1f}"
            )
        if ours and ml and ks:
            yield (
                f"- c={concurrency}: our model server's CPU per request is "
                f"{ours.total_cpu_us / ml.total_cpu_us:.2f}x MLServer's and "
                f"{ours.total_cpu_us / ks.total_cpu_us:.2f}x KServe's; throughput "
                f"{ours.rps / ml.rps:.2f}x and {ours.rps / ks.rps:.2f}x; p99/p50 "
                f"{ours.p99_ms / ours.p50_ms:.1f} (MLServer {ml.p99_ms / ml.p50_ms:.1f}, "
                f"KServe {ks.p99_ms / ks.p50_ms:.1f})"
            )
        if ours and ng and rt:
            yield (
                f"- c={concurrency}: router CPU per request {rt.cpu_us['proxy']:.0f} us = "
                f"{rt.cpu_us['proxy'] / ng.cpu_us['proxy']:.1f}x nginx's "
                f"({ng.cpu_us['proxy']:.0f} us); p50 added over a direct call: router "
                f"{rt.p50_ms - ours.p50_ms:.3f} ms, nginx {ng.p50_ms - ours.p50_ms:.3f} ms; the "
                f"model server behind the router costs {rt.cpu_us['upstream']:.0f} us a request "
                f"(behind nginx {ng.cpu_us['upstream']:.0f}, called directly "
                f"{ours.total_cpu_us:.0f})"
            )
        if ours and ng and rt and floor:
            yield (
                f"- c={concurrency}: a Python gateway that only forwards (our HTTP layers, "
                f"`sluice.bench.floor_proxy`) costs {floor.cpu_us['proxy']:.0f} us a request = "
                f"{floor.cpu_us['proxy'] / ng.cpu_us['proxy']:.1f}x nginx's and adds "
                f"{floor.p50_ms - ours.p50_ms:.3f} ms to p50; the router costs "
                f"{rt.cpu_us['proxy'] / floor.cpu_us['proxy']:.1f}x that floor "
                f"({rt.cpu_us['proxy'] - floor.cpu_us['proxy']:.0f} us for what it does)"
            )
        if rt and untuned:
            yield (
                f"- c={concurrency}: router with its startup heap frozen out of the GC (the "
                f"default) against Python's default GC: proxy CPU per request "
                f"{rt.cpu_us['proxy']:.0f} vs {untuned.cpu_us['proxy']:.0f} us, p99 "
                f"{rt.p99_ms:.2f} vs {untuned.p99_ms:.2f} ms, p99.9 {rt.p999_ms:.2f} vs "
                f"{untuned.p999_ms:.2f} ms"
            )
        if rt and asgi:
            yield (
                f"- c={concurrency}: router answering inference from its own protocol (the "
                f"default) against uvicorn's ASGI cycle: proxy CPU per request "
                f"{rt.cpu_us['proxy']:.0f} vs {asgi.cpu_us['proxy']:.0f} us, p50 "
                f"{rt.p50_ms:.3f} vs {asgi.p50_ms:.3f} ms"
            )


def nginx_version() -> str:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    out = subprocess.run([binary, "-v"], capture_output=True, text=True).stderr
    return out.strip().rsplit("/", 1)[-1]


if __name__ == "__main__":
    main()
