"""The lab's TCP relay (etcd for node API servers): bytes flow both ways, each connection on its own."""

from __future__ import annotations

import asyncio
import contextlib

from kubevip.lab.ports import free_port
from kubevip.lab.relay import serve
from kubevip.tasks import bounded


async def test_relay_carries_both_directions_per_connection() -> None:
    async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while data := await r.read(1024):
            w.write(data.upper())
            await w.drain()
        w.close()

    upstream = await asyncio.start_server(echo, "127.0.0.1", 0)
    up_port = upstream.sockets[0].getsockname()[1]
    port = free_port("127.0.0.1")
    relay = asyncio.get_running_loop().create_task(serve("127.0.0.1", port, "127.0.0.1", up_port))
    try:
        deadline = asyncio.get_running_loop().time() + 5
        while True:
            try:
                conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
                break
            except OSError:
                assert asyncio.get_running_loop().time() < deadline, "relay did not listen"
                await asyncio.sleep(0.01)
        for i, (r, w) in enumerate(conns):
            w.write(f"hello {i}".encode())
            await w.drain()
            assert await bounded(r.readexactly(7), 5) == f"HELLO {i}".encode()
        for _, w in conns:
            w.close()
            await w.wait_closed()
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
        upstream.close()
        await upstream.wait_closed()
