"""What answering the inference path without uvicorn's ASGI cycle saves, per request.

``core.serve.HotHttpProtocol`` (the ``hot_protocol`` setting) against uvicorn's own
httptools protocol, both serving the same app: a hot path whose answer is a fixed small
body, so what is measured is the HTTP layer alone (parsing, the request's cycle, the
request id, the route metrics, writing the answer). Requests are fed from memory to a
protocol on a transport that keeps what is written: no sockets, no other process, so the
figure is the Python cost and barely moves with the machine's load (the write(2) the hot
protocol saves is not in it). Process CPU time per request, the two alternating in every
round; the page has the medians and their ratio.

    python -m sluice.bench.http_protocol [--rounds 7] [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn
import uvloop
from prometheus_client import CollectorRegistry
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from sluice.bench._common import RESULTS
from sluice.bench.peers import machine
from sluice.core.errors import SluiceError
from sluice.core.http import Answer, HotPath, HttpMetrics, ShortcutApp
from sluice.core.serve import hot_protocol

BODY = b'{"model_name":"m","outputs":[{"name":"p","shape":[1],"datatype":"FP64","data":[0.5]}]}'
INPUT = b'{"inputs":[{"name":"x","shape":[1],"datatype":"FP64","data":[1]}]}'
REQUEST = (
    b"POST /v2/models/m/infer HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(INPUT), INPUT)
)


class Fixed(HotPath[str]):
    """A hot path that reads the body and answers ``BODY``."""

    async def answer(self, scope: Any, receive: Any, *_: str) -> Answer:  # noqa: ARG002
        await receive()
        return (
            200,
            BODY,
            [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))],
        )

    def error(self, exc: SluiceError, *_: str) -> Answer:
        raise exc


class Kept(asyncio.Transport):
    """A transport that keeps what is written and wakes whoever waits for an answer."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.answered = asyncio.Event()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data
        if self.written.endswith(BODY):
            self.answered.set()

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:  # noqa: ARG002
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


async def cpu_per_request(hot: bool, requests: int) -> float:
    """Process CPU microseconds per request through one keep-alive connection."""
    app = ShortcutApp()
    app.shortcut = Fixed(
        [("/v2/models/{model}/infer", "v2")], HttpMetrics(CollectorRegistry(), "b")
    )
    kind = hot_protocol(app) if hot else HttpToolsProtocol
    assert (kind is not HttpToolsProtocol) == hot
    config = uvicorn.Config(app, http=kind, lifespan="off", access_log=False, log_config=None,
                            proxy_headers=False)  # fmt: skip
    config.load()
    protocol = kind(config=config, server_state=ServerState(), app_state={})
    transport = Kept()
    protocol.connection_made(transport)
    started = time.process_time()
    for _ in range(requests):
        transport.answered.clear()
        protocol.data_received(REQUEST)
        async with asyncio.timeout(10):  # a bench that never gets its answer says so
            await transport.answered.wait()
        transport.written.clear()
    seconds = time.process_time() - started
    protocol.connection_lost(None)
    return seconds / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=20_000, help="per protocol and round")
    parser.add_argument("--out", type=Path, default=RESULTS / "http_protocol.md")
    args = parser.parse_args()
    runs: dict[str, list[float]] = {"uvicorn's ASGI cycle": [], "hot protocol": []}
    load_before = os.getloadavg()

    async def measure() -> None:
        for n in range(args.rounds):
            for name in runs:
                runs[name].append(await cpu_per_request(name == "hot protocol", args.requests))
            done = ", ".join(f"{k} {v[-1]:.1f} us" for k, v in runs.items())
            print(f"round {n + 1}/{args.rounds}: {done}", flush=True)

    uvloop.run(measure())
    asgi, hot = (statistics.median(v) for v in runs.values())
    lines = [
        "# The inference path without uvicorn's ASGI cycle",
        "",
        f"- machine: {machine()}; load average before / after (1 min): "
        f"{load_before[0]:.2f} / {os.getloadavg()[0]:.2f}",
        f"- command: `python -m sluice.bench.http_protocol {' '.join(sys.argv[1:])}`".rstrip(),
        f"- {args.rounds} rounds of {args.requests:,} requests each per protocol, alternating; "
        "one keep-alive connection fed from memory (no sockets); process CPU per request",
        "",
        "| protocol | CPU µs/request (median) | rounds |",
        "| --- | ---: | --- |",
        *(
            f"| {k} | {statistics.median(v):.1f} | {', '.join(f'{x:.1f}' for x in v)} |"
            for k, v in runs.items()
        ),
        "",
        f"The hot protocol costs {hot / asgi:.2f}x uvicorn's cycle ({asgi - hot:.1f} µs less a "
        "request), before the write(2) it also saves (one write per answer instead of two).",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
