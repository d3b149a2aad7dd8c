"""The least a Python gateway on our stack does: the floor under the router in
``sluice.bench.peers``.

uvicorn's httptools protocol with the router's hot protocol (the answer in one write),
uvloop, the startup heap frozen out of the GC, and the router's own upstream client
(``router.http1``, keep-alive pools). A POST's body goes upstream as it came, to the same
path, and the upstream's answer comes back as it is. No routing, request id, JSON,
prediction log, tallies or metrics. What the router costs above this is what it does; what
this costs above nginx is what CPython and our HTTP layers cost before the router does
anything. Any other request (the readiness probe) gets a 200 from a bare ASGI app.

    python -m sluice.bench.floor_proxy --port 8090 --upstream http://127.0.0.1:8081
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.types import Receive, Scope, Send

from sluice.core.http import Answer, HotPath
from sluice.core.serve import HotHttpProtocol, freeze_startup_heap
from sluice.router.http1 import Http1Upstream

JSON = [(b"content-type", b"application/json")]


class Forward(HotPath[str]):
    """Every POST, forwarded as it is."""

    def __init__(self, upstream: str) -> None:  # no routes, no metrics: nothing but the call
        self.upstream = upstream.rstrip("/")
        self.client = Http1Upstream(connections=256, connect_timeout=5.0)

    def match(self, scope: Scope) -> bool:
        return bool(scope["type"] == "http" and scope["method"] == "POST")

    async def respond(self, scope: Scope, receive: Receive) -> Answer | None:
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        reply = await self.client.request(
            "POST",
            self.upstream + scope["path"],
            b"".join(chunks),
            10.0,
            {"content-type": "application/json"},
        )
        return reply.status, reply.body, [*JSON, (b"content-length", b"%d" % len(reply.body))]


async def ready(scope: Scope, receive: Receive, send: Send) -> None:  # noqa: ARG001
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": JSON})
    await send({"type": "http.response.body", "body": b"{}"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:8081")
    args = parser.parse_args()
    protocol = type("FloorHttp", (HotHttpProtocol,), {"hot": Forward(args.upstream)})
    config = uvicorn.Config(ready, host="127.0.0.1", port=args.port, loop="uvloop", http=protocol,
                            lifespan="off", access_log=False, proxy_headers=False,
                            log_config=None)  # fmt: skip
    freeze_startup_heap()
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
