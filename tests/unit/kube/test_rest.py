"""kubevip's REST client: TCP keepalive with short timers, connections that stay warm, and TLS reads
through a small buffer."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import json
import socket
import ssl
from pathlib import Path

import aiohttp
from aiohttp import web

from kubevip.kube import TLS_READ_BUFFER
from kubevip.kube.errors import read_json
from kubevip.kube.rest import (
    KEEPCNT,
    KEEPIDLE,
    KEEPINTVL,
    USER_TIMEOUT_MS,
    Access,
    RestClient,
    keepalive_socket,
)


def test_keepalive_socket_options() -> None:
    sock = keepalive_socket((socket.AF_INET, socket.SOCK_STREAM, 0, "", ("127.0.0.1", 0)))
    try:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == KEEPIDLE
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == KEEPINTVL
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == KEEPCNT
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == USER_TIMEOUT_MS
        # dead peer found within ~30 s of silence, not the kernel's default two hours
        assert KEEPIDLE + KEEPCNT * KEEPINTVL <= 60
    finally:
        sock.close()


async def test_a_closed_watch_never_costs_the_next_request_its_warm_connection() -> None:
    """Watches end by being cancelled, which closes their connection. Sharing one pool, a watch took the
    idle connection the next Lease create would have reused, and the create paid a new TLS handshake
    (12 ms instead of 3 on the lab). Watches have a pool of their own: the short request's connection
    stays warm (a real HTTP server on loopback tells which connection each request came on)."""
    peers: list[tuple[str, int]] = []
    done = asyncio.Event()

    async def lease(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername") if request.transport else ("", 0))
        return web.json_response({"kind": "Lease"})

    async def watch(request: web.Request) -> web.StreamResponse:
        peers.append(request.transport.get_extra_info("peername") if request.transport else ("", 0))
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b'{"type":"BOOKMARK"}\n')
        await done.wait()  # streams until the test ends
        return resp

    app = web.Application()
    app.router.add_get("/lease", lease)
    app.router.add_get("/watch", watch)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    api = RestClient(Access(server=f"http://127.0.0.1:{port}"))
    try:
        await read_json(await api.request("GET", "/lease"), "lease")
        stream = await api.request("GET", "/watch", stream=True, timeout=aiohttp.ClientTimeout(total=None))
        assert (await stream.content.readline()).startswith(b'{"type"')
        stream.close()  # what cancelling a watch does to its connection
        await read_json(await api.request("GET", "/lease"), "lease")
        first, watched, again = peers
        assert again == first, "the short request got a new connection"
        assert watched != first
    finally:
        done.set()
        await api.close()
        await runner.cleanup()


async def test_a_list_far_larger_than_the_tls_read_buffer_arrives_whole(pki: Path) -> None:
    """asyncio's 256 KiB TLS read buffer per connection is 32 KiB in kubevip (kubevip.kube): the buffer
    the connection really got is that size, and a 2 MB list over TLS arrives intact."""
    body = {"kind": "ServiceList", "items": [{"metadata": {"name": f"s-{i}"}, "spec": {"x": "y" * 150}}
                                             for i in range(10000)]}
    raw = json.dumps(body).encode()
    assert len(raw) > 50 * TLS_READ_BUFFER

    async def listing(request: web.Request) -> web.Response:
        return web.Response(body=raw, content_type="application/json")

    app = web.Application()
    app.router.add_get("/list", listing)
    runner = web.AppRunner(app)
    await runner.setup()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(pki / "cert.pem", pki / "key.pem")
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = runner.addresses[0][1]
    client_ctx = ssl.create_default_context(cafile=str(pki / "cert.pem"))
    access = Access(server=f"https://127.0.0.1:{port}", ssl=client_ctx, tls_server_name="kubevip-test")
    api = RestClient(access)
    try:
        resp = await api.request("GET", "/list")
        transport = resp.connection.transport if resp.connection else None
        ssl_proto = getattr(transport, "_ssl_protocol", None)  # asyncio's TLS layer under aiohttp's
        assert isinstance(ssl_proto, asyncio.sslproto.SSLProtocol), transport
        assert len(ssl_proto._ssl_buffer) == TLS_READ_BUFFER
        assert await read_json(resp, "list") == body
    finally:
        await api.close()
        await runner.cleanup()
