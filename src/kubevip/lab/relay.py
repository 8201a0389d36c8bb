"""A TCP relay `LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT` (lab only).

The lab's etcd listens on host loopback; the API servers of `lab up --control-plane N` run inside node
namespaces and reach it through this relay on the lab uplink address, which only the lab's namespaces
can reach. etcd is never exposed on a routable address.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()


async def serve(listen_host: str, listen_port: int, target_host: str, target_port: int) -> None:
    """Accept forever; each connection gets its own upstream connection."""

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection(target_host, target_port)
        except OSError:
            w.close()
            return
        # Both directions until either side closes; the tasks end with their connection.
        await asyncio.gather(_pipe(r, uw), _pipe(ur, w))

    server = await asyncio.start_server(handle, listen_host, listen_port, reuse_address=True)
    print(f"relay {listen_host}:{listen_port} -> {target_host}:{target_port}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    lh, lp, th, tp = argv
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(lh, int(lp), th, int(tp)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
