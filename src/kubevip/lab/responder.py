"""A stand-in for kube-proxy + pods in the lab: answers on every local address (VIPs included) with the
node's name, over TCP and UDP, both families. `python -m kubevip.lab.responder NAME PORT`."""

from __future__ import annotations

import asyncio
import socket
import sys


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(self.reply, addr)  # type: ignore[attr-defined]


def _dual_stack(kind: int, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    # Answer from the VIP the client used even when it was added after we bound.
    s.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND
    s.bind(("::", port))
    return s


async def serve(name: str, port: int) -> None:
    reply = f"{name}\n".encode()

    async def on_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(on_tcp, sock=_dual_stack(socket.SOCK_STREAM, port))
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: _Udp(reply), sock=_dual_stack(socket.SOCK_DGRAM, port))
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    asyncio.run(serve(argv[0], int(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
