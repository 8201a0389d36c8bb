"""A fault-injecting HTTP proxy in front of the real API server, for the fault tests of kube/
(tests/cluster/kube/) and the soak (bench/chaos.py), whose agents in the lab's node namespaces reach it
over the lab uplink (`listen`).

The client speaks plain HTTP/1.1 to the proxy (Access(server="http://127.0.0.1:<port>", token=...)); the
proxy forwards each request over TLS to kube-apiserver and relays the answer byte for byte. Every request
is counted (time, method, target), so tests can bound the request rate. Faults, switched on and off by
the test while clients run:

- `refuse`: new connections are reset at once (the API server is away: a drop);
- `reset_all()`: every open connection is closed with a TCP RST;
- `freeze()`: open connections stop forwarding in both directions but stay open (half-open: the API
  server's host died or the control-plane VIP moved); new connections work;
- `delay`: seconds added before each request is forwarded;
- `answer`: a status (429 with Retry-After, 500, ...) answered by the proxy instead of the API server,
  for requests matching `answer_watches_only`;
- `empty_watches`: a watch is answered 200 with an empty body and closed at once;
- `truncate_watches`: a watch's answer is cut after that many bytes (mid-event), the connection closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Request:
    at: float
    method: str
    target: str

    @property
    def watch(self) -> bool:
        return "watch=true" in self.target

    @property
    def verb(self) -> str:
        """The API server's verb for this request (get, list, watch, create, update, patch, delete)."""
        if self.watch:
            return "watch"
        if self.method == "GET":
            # A collection ends in a resource name after a group/version or a namespace; an object one
            # more segment. Good enough for the paths our clients use (/api/v1/..., /apis/g/v/...).
            path = self.target.split("?", 1)[0].strip("/").split("/")
            rest = path[2:] if path[:1] == ["api"] else path[3:]
            if rest[:1] == ["namespaces"] and len(rest) >= 3:
                rest = rest[2:]
            return "list" if len(rest) == 1 else "get"
        return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
            self.method, self.method.lower())


@dataclass(eq=False)
class _Conn:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    frozen: asyncio.Event = field(default_factory=asyncio.Event)
    truncate: int | None = None  # bytes of the current answer still to forward before cutting


class FaultProxy:
    def __init__(
        self, host: str, port: int, upstream_ssl: ssl.SSLContext, listen: str = "127.0.0.1"
    ) -> None:
        self.host, self.port, self.upstream_ssl, self.listen = host, port, upstream_ssl, listen
        self.requests: list[Request] = []
        self.connections: list[float] = []  # when each client connection was accepted
        self.refuse = False
        self.delay = 0.0
        self.answer: tuple[int, dict[str, str]] | None = None
        self.answer_watches_only = False
        self.empty_watches = False
        self.truncate_watches: int | None = None
        self._server: asyncio.Server | None = None
        self._conns: set[_Conn] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        host = f"[{self.listen}]" if ":" in self.listen else self.listen
        return f"http://{host}:{self._server.sockets[0].getsockname()[1]}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.listen, 0)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.reset_all()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # ----- faults --------------------------------------------------------------------------------------

    def clear(self) -> None:
        self.refuse = False
        self.delay = 0.0
        self.answer = None
        self.answer_watches_only = False
        self.empty_watches = False
        self.truncate_watches = None

    def reset_all(self) -> None:
        """Close every client connection with RST (SO_LINGER 0), and its upstream."""
        for c in list(self._conns):
            _rst(c.client)
            if c.upstream is not None:
                c.upstream.transport.abort()

    def freeze(self) -> int:
        """Stop forwarding on every open connection, keeping it open; returns how many."""
        for c in self._conns:
            c.frozen.set()
        return len(self._conns)

    def since(self, t: float) -> list[Request]:
        return [r for r in self.requests if r.at >= t]

    def connections_since(self, t: float) -> list[float]:
        return [c for c in self.connections if c >= t]

    # ----- relay ---------------------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = _Conn(writer)
        self._conns.add(conn)
        self.connections.append(time.monotonic())
        try:
            if self.refuse:
                _rst(writer)
                return
            await self._serve(conn, reader)
        except asyncio.CancelledError:
            return  # the proxy closes (asyncio's server callback would log the cancellation)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError):
            pass
        finally:
            self._conns.discard(conn)
            self._tasks.discard(task)
            writer.transport.abort()
            if conn.upstream is not None:
                conn.upstream.transport.abort()

    async def _serve(self, conn: _Conn, reader: asyncio.StreamReader) -> None:
        pump: asyncio.Task[None] | None = None
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                body = await reader.readexactly(_content_length(head))
                method, target = head.split(b" ", 2)[:2]
                req = Request(time.monotonic(), method.decode(), target.decode())
                self.requests.append(req)
                if self.delay:
                    await asyncio.sleep(self.delay)
                if await self._fault(conn, req):
                    return
                if conn.upstream is None:
                    up_r, conn.upstream = await asyncio.open_connection(
                        self.host, self.port, ssl=self.upstream_ssl, server_hostname=self.host
                    )
                    pump = asyncio.create_task(self._pump(conn, up_r))
                conn.truncate = self.truncate_watches if req.watch else None
                await self._wait_unfrozen(conn)
                conn.upstream.write(head + body)
                await conn.upstream.drain()
        finally:
            if pump is not None:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump

    async def _fault(self, conn: _Conn, req: Request) -> bool:
        """Answer `req` here when a fault says so (and close); True if it was answered."""
        if self.empty_watches and req.watch:
            await _reply(conn.client, 200, {}, b"")
            return True
        if self.answer is not None and (req.watch or not self.answer_watches_only):
            status, headers = self.answer
            body = b'{"kind":"Status","apiVersion":"v1","status":"Failure","message":"injected","code":%d}'
            await _reply(conn.client, status, headers, body % status)
            return True
        return False

    async def _wait_unfrozen(self, conn: _Conn) -> None:
        if conn.frozen.is_set():
            await asyncio.Event().wait()  # half-open: never forward again, never close

    async def _pump(self, conn: _Conn, upstream: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ssl.SSLError):
            while data := await upstream.read(65536):
                await self._wait_unfrozen(conn)
                if conn.truncate is not None:
                    if len(data) >= conn.truncate:
                        conn.client.write(data[: conn.truncate])
                        await conn.client.drain()
                        conn.client.transport.abort()
                        return
                    conn.truncate -= len(data)
                conn.client.write(data)
                await conn.client.drain()
        conn.client.transport.abort()  # the API server closed: so does the proxy


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


async def _reply(writer: asyncio.StreamWriter, status: int, headers: dict[str, str], body: bytes) -> None:
    lines = [f"HTTP/1.1 {status} Injected", "Content-Type: application/json",
             f"Content-Length: {len(body)}", "Connection: close",
             *(f"{k}: {v}" for k, v in headers.items())]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    with contextlib.suppress(OSError):
        await writer.drain()


def _rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
