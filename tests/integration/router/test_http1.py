"""The router's HTTP/1.1 client against real sockets on 127.0.0.1 (a tiny server in this
process that can answer in several ways), and against a real model server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from sluice.router.backends import AiohttpUpstream, MetadataSchemas, UpstreamFailure
from sluice.router.http1 import Http1Upstream, InvalidHeader
from tests.integration.router.conftest import MODEL, Stack, metric, wait_for
from tests.support.procs import free_port, running, sluice_command

Handler = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]
"""Answers one request (its head and body); returns whether to keep the connection."""


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A server on a random port; yields its URL and the number of requests per connection."""
    per_connection: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        per_connection.append(0)
        index = len(per_connection) - 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                per_connection[index] += 1
                if not await handler(head + body, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    port = free_port()
    srv = await asyncio.start_server(serve, "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}", per_connection
    finally:
        srv.close()
        await srv.wait_closed()


def answer(body: bytes, *, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        + extra
        + b"content-length: %d\r\n\r\n" % len(body)
        + body
    )


async def echo(request: bytes, writer: asyncio.StreamWriter) -> bool:
    writer.write(answer(request.split(b"\r\n\r\n", 1)[1] or b"{}"))
    await writer.drain()
    return True


def test_requests_reuse_one_keep_alive_connection() -> None:
    async def run() -> None:
        async with server(echo) as (url, per_connection):
            client = Http1Upstream(connections=4, connect_timeout=1.0)
            for i in range(5):
                body = b'{"i": %d}' % i
                reply = await client.request("POST", f"{url}/infer", body, 1.0)
                assert (reply.status, reply.body, reply.content_type) == (
                    200,
                    body,
                    "application/json",
                )
            assert per_connection == [5]
            await client.close()

    asyncio.run(run())


def test_chunked_answers_and_the_binary_header_are_read() -> None:
    async def chunked(_: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n"
            b"inference-header-content-length: 2\r\n\r\n"
            b"2\r\n{}\r\n3\r\nabc\r\n0\r\n\r\n"
        )
        await writer.drain()
        return True

    async def run() -> None:
        async with server(chunked) as (url, _):
            client = Http1Upstream(connections=1, connect_timeout=1.0)
            reply = await client.request("GET", f"{url}/x", None, 1.0)
            assert (reply.body, reply.header_length) == (b"{}abc", "2")
            await client.close()

    asyncio.run(run())


def test_a_connection_the_server_closed_is_replaced_without_an_error() -> None:
    async def once(request: bytes, writer: asyncio.StreamWriter) -> bool:
        await echo(request, writer)
        return False  # close after every answer, without saying so

    async def run() -> None:
        async with server(once) as (url, per_connection):
            client = Http1Upstream(connections=1, connect_timeout=1.0)
            for _ in range(3):
                assert (await client.request("POST", url, b"{}", 1.0)).status == 200
                await asyncio.sleep(0.05)  # the close reaches the client while idle
            assert per_connection == [1, 1, 1]
            await client.close()

    asyncio.run(run())


def test_no_answer_is_a_connect_failure_and_a_slow_one_a_timeout() -> None:
    async def slow(request: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.5)
        return await echo(request, writer)

    async def run() -> None:
        client = Http1Upstream(connections=2, connect_timeout=1.0)
        with pytest.raises(UpstreamFailure) as refused:
            await client.request("POST", f"http://127.0.0.1:{free_port()}/", b"{}", 1.0)
        assert refused.value.reason == "connect"
        async with server(slow) as (url, _):
            with pytest.raises(UpstreamFailure) as late:
                await client.request("POST", url, b"{}", 0.1)
            assert late.value.reason == "timeout"
            assert (await client.request("POST", url, b"{}", 2.0)).status == 200
        await client.close()

    asyncio.run(run())


def test_at_most_the_configured_connections_are_opened() -> None:
    async def slowish(request: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.01)
        return await echo(request, writer)

    async def run() -> None:
        async with server(slowish) as (url, per_connection):
            client = Http1Upstream(connections=3, connect_timeout=1.0)
            replies = await asyncio.gather(
                *(client.request("POST", url, b'{"n": %d}' % i, 5.0) for i in range(30))
            )
            assert [r.body for r in replies] == [b'{"n": %d}' % i for i in range(30)]
            assert len(per_connection) == 3 and sum(per_connection) == 30
            await client.close()

    asyncio.run(run())


def test_a_model_servers_metadata_is_enough_without_a_registry(stack: Stack) -> None:
    async def run() -> None:
        client = Http1Upstream(connections=2, connect_timeout=1.0)
        source = MetadataSchemas(client, registry=None, lookup=None, timeout=5.0)
        schema = await source.schema(MODEL, "v1", stack.servers["v1"])
        await client.close()
        card = stack.registry.card(MODEL, "v1")
        assert schema.features == tuple(f.name for f in card.features)
        assert schema.entity_key == card.entity_key
        assert schema.defaults == {
            f.name: f.default for f in card.features if f.default is not None
        }
        assert schema.nullable == frozenset(f.name for f in card.features if f.allow_missing)
        assert schema.classes == tuple(card.classes)

    asyncio.run(run())


def test_host_is_the_host_and_port_and_never_the_userinfo() -> None:
    heads: list[bytes] = []

    async def record(request: bytes, writer: asyncio.StreamWriter) -> bool:
        heads.append(request.split(b"\r\n\r\n", 1)[0])
        return await echo(request, writer)

    async def run() -> None:
        async with server(record) as (url, _):
            port = url.rsplit(":", 1)[1]
            client = Http1Upstream(connections=1, connect_timeout=1.0)
            secret = f"http://admin:s3cret@127.0.0.1:{port}/v2/models/m/infer"
            assert (await client.request("POST", secret, b"{}", 1.0)).status == 200
            await client.close()
        lines = heads[0].split(b"\r\n")
        assert lines[0] == b"POST /v2/models/m/infer HTTP/1.1"
        assert [h for h in lines if h.lower().startswith(b"host:")] == [
            f"Host: 127.0.0.1:{port}".encode()
        ]
        assert b"s3cret" not in heads[0] and b"admin" not in heads[0]

    asyncio.run(run())


@pytest.mark.parametrize(
    "headers",
    [
        {"x-forwarded": "1\r\nx-injected: yes"},
        {"x-forwarded": "1\nx-injected: yes"},
        {"x-forwarded": "1\x00"},
        {"x-forwarded\r\nx-injected": "yes"},
    ],
)
def test_a_header_with_cr_lf_or_nul_is_refused_and_nothing_is_sent(
    headers: dict[str, str],
) -> None:
    async def run() -> None:
        async with server(echo) as (url, per_connection):
            client = Http1Upstream(connections=1, connect_timeout=1.0)
            with pytest.raises(InvalidHeader, match="x-forwarded"):
                await client.request("POST", url, b"{}", 1.0, headers)
            assert (await client.request("POST", url, b"{}", 1.0)).status == 200
            assert per_connection == [1]  # only the good request reached the server
            await client.close()

    asyncio.run(run())


@pytest.mark.parametrize("kind", [Http1Upstream, AiohttpUpstream])
def test_an_answer_over_the_cap_is_refused_not_held(kind: type) -> None:
    big = b"[" + b"1," * 1000 + b"1]"

    async def declared(_: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(big))
        await writer.drain()
        return True

    async def chunked(_: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(4):
            writer.write(b"%x\r\n%s\r\n" % (len(big), big))
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    async def run() -> None:
        client = kind(connections=1, connect_timeout=1.0, max_response_bytes=1024)
        for handler in (declared, chunked):
            async with server(handler) as (url, _):
                with pytest.raises(UpstreamFailure) as failed:
                    await client.request("GET", f"{url}/x", None, 2.0)
                assert failed.value.reason == "too_large"
                assert "limit of 1024 bytes" in str(failed.value)
        async with server(echo) as (url, _):  # the client still works
            assert (await client.request("POST", url, b"{}", 2.0)).body == b"{}"
        await client.close()

    asyncio.run(run())


def test_through_the_router_too_large_is_502_and_a_bad_forwarded_header_400(
    stack: Stack, tmp_path: Path
) -> None:
    stack.route()
    port = free_port()
    argv = [*sluice_command(), "serve", "router", "--redis-url", stack.redis_url,
            "--registry", str(stack.registry.root), "--port", str(port)]  # fmt: skip
    # the model's metadata (about 1.3 kB) fits; the answer to 500 rows (over 8 kB) does not
    env = {"SLUICE_ROUTER_MAX_RESPONSE_BYTES": "4096"}
    log = tmp_path / "router.log"
    with running(argv, log=log, env=env, ready_url=f"http://127.0.0.1:{port}/readyz") as router:
        url = f"{router.url}/v1/models/{MODEL}:predict"
        rows = [stack.row(c) for c in stack.customers(500)]
        resp = httpx.post(url, json={"instances": rows}, timeout=10)
        assert resp.status_code == 502, resp.text
        assert resp.json()["error"]["code"] == "bad_gateway"
        message = resp.json()["error"]["message"]
        assert "limit of 4096 bytes" in message and "SLUICE_ROUTER_MAX_RESPONSE_BYTES" in message
        assert "127.0.0.1" not in message  # the upstream's address stays in our log
        labels = {"model": MODEL, "version": "v1", "role": "primary", "reason": "too_large"}
        assert metric(router.url, "sluice_router_upstream_errors_total", **labels) == 1
        wait_for(lambda: "limit of 4096 bytes" in log.read_text(), what="the 502 logged")
        assert httpx.post(url, json={"instances": rows[:1]}, timeout=10).status_code == 200
        bad = httpx.post(
            f"{router.url}/v2/models/{MODEL}/infer",
            content=b"{}",
            headers={"inference-header-content-length": "2, x"},
            timeout=10,
        )
        assert bad.status_code == 400, bad.text
        assert "inference-header-content-length" in bad.json()["error"]
