"""kubevip's REST client: TCP keepalive with short timers, and connections that stay warm."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
from aiohttp import web

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
