"""A small async Kubernetes REST client over one aiohttp session: paths in, raw responses out.

It replaces kubernetes_asyncio in the agent, whose generated models alone cost ~70 MB RSS; every caller
reads JSON itself, so all a client has to do is build the URL, authenticate and pick the timeout.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from kubevip import __version__
from kubevip.errors import ConfigError
from kubevip.kube.errors import retry_after

Query = Mapping[str, str | int | bool | None]
# Bound service-account tokens rotate (kubelet refreshes the file well before expiry); client-go
# re-reads its token file once a minute, and so do we.
TOKEN_REFRESH = 60.0
# Every request has a deadline: a caller that passes none gets this one (seconds, whole request).
DEFAULT_TIMEOUT = 10.0
# A 429 with Retry-After is waited out inside the request while its deadline allows, this many times;
# after that the caller sees TooManyRequests (with retry_after) and backs off itself.
RETRIES_429 = 3
# TCP keepalive: a connection whose peer vanished (API server host died, control-plane VIP moved) is
# found dead after KEEPIDLE + KEEPCNT * KEEPINTVL seconds of silence (~30 s), instead of the kernel's
# two hours; TCP_USER_TIMEOUT bounds the same for data sent and never acknowledged.
KEEPIDLE, KEEPINTVL, KEEPCNT = 15, 5, 3
USER_TIMEOUT_MS = 30_000


def keepalive_socket(addr_info: Any) -> socket.socket:
    """The connector's socket factory: an ordinary TCP socket with keepalive probes on."""
    family, type_, proto, _, _ = addr_info
    sock = socket.socket(family=family, type=type_, proto=proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", KEEPIDLE), ("TCP_KEEPINTVL", KEEPINTVL), ("TCP_KEEPCNT", KEEPCNT),
                        ("TCP_USER_TIMEOUT", USER_TIMEOUT_MS)):
        if hasattr(socket, name):  # Linux has all four; elsewhere keepalive with the system's timers
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    return sock


@dataclass(frozen=True)
class Access:
    """Where the API server is and how to authenticate: what a kubeconfig or the Pod environment says."""

    server: str  # scheme://host[:port], no trailing slash
    ssl: ssl.SSLContext | None = None  # None for plain http; carries the CA and any client certificate
    tls_server_name: str = ""  # check the serving certificate for this name instead of the URL's host
    token: str = ""
    token_file: str = ""  # re-read every TOKEN_REFRESH seconds (rotating service-account tokens)
    username: str = ""
    password: str = ""


def query_string(query: Query | None) -> dict[str, str]:
    """The query as strings: booleans as `true`/`false` (as the API server spells them), None dropped."""
    out: dict[str, str] = {}
    for key, value in (query or {}).items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


class RestClient:
    """Requests against one API server; the caller reads and releases each response."""

    def __init__(self, access: Access, *, pool_size: int = 100) -> None:
        self.access = access
        self.pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None
        # Watches have a pool of their own. A watch ends by being cancelled, which closes its connection;
        # in the shared pool it had taken the idle connection the next short request would have reused,
        # so that request paid a new TLS handshake: a per-Service Lease create took 12 ms instead of 3
        # (py-spy of the BGP create path). Go's client multiplexes both over one HTTP/2 connection.
        self._streams: aiohttp.ClientSession | None = None
        self._token = access.token
        self._token_read = -TOKEN_REFRESH

    @property
    def server(self) -> str:
        return self.access.server

    def _auth(self, reread: bool = False) -> str:
        a = self.access
        if a.token_file:
            now = time.monotonic()
            if reread or now - self._token_read >= TOKEN_REFRESH or not self._token:
                try:
                    self._token = Path(a.token_file).read_text().strip()
                except OSError as exc:  # keep the last token: the file is being swapped, or will be back
                    if not self._token:
                        raise ConfigError("tokenFile", a.token_file, f"cannot read it: {exc}") from exc
                self._token_read = now
        if self._token:
            return f"Bearer {self._token}"
        if a.username:
            pair = f"{a.username}:{a.password}".encode()
            return "Basic " + base64.b64encode(pair).decode()
        return ""

    def _open(self, stream: bool = False) -> aiohttp.ClientSession:
        session = self._streams if stream else self._session
        if session is None or session.closed:
            # trust_env=False: no ~/.netrc or proxy variables consulted on every request (py-spy showed
            # it); an agent on the host network talks to its API server directly.
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.pool_size, socket_factory=keepalive_socket),
                trust_env=False,
            )
            if stream:
                self._streams = session
            else:
                self._session = session
        return session

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | aiohttp.ClientTimeout | None = None,  # noqa: ASYNC109 (aiohttp applies it)
        stream: bool = False,
    ) -> aiohttp.ClientResponse:
        """Send `method path?query` with `body` as JSON; any HTTP status comes back as the response.

        `timeout`: seconds for the whole request (default DEFAULT_TIMEOUT), or aiohttp phases (watches).
        `stream`: a long-lived response (a watch), sent over the watches' own connections.
        A 401 re-reads the token file at once and tries once more (a rotated token must not wait for
        the next periodic re-read); a 429 is waited out (Retry-After) while the deadline allows.
        """
        if not isinstance(timeout, aiohttp.ClientTimeout):
            timeout = aiohttp.ClientTimeout(total=DEFAULT_TIMEOUT if timeout is None else timeout)
        loop = asyncio.get_running_loop()
        deadline = None if timeout.total is None else loop.time() + timeout.total
        reread, waited = False, 0
        while True:
            resp = await self._send(method, path, query, body, content_type, timeout, reread, stream)
            if resp.status == 401 and self.access.token_file and not reread:
                resp.release()
                reread = True
                continue
            if resp.status == 429 and deadline is not None and waited < RETRIES_429:
                delay = retry_after(resp.headers.get("Retry-After"))
                if delay is not None and loop.time() + delay < deadline:
                    resp.release()
                    waited += 1
                    await asyncio.sleep(delay)
                    timeout = aiohttp.ClientTimeout(total=max(0.1, deadline - loop.time()))
                    continue
            return resp

    async def _send(
        self, method: str, path: str, query: Query | None, body: Any, content_type: str,
        timeout: aiohttp.ClientTimeout, reread: bool, stream: bool = False,  # noqa: ASYNC109
    ) -> aiohttp.ClientResponse:
        headers = {"Accept": "application/json", "User-Agent": f"kubevip/{__version__}"}
        auth = self._auth(reread)
        if auth:
            headers["Authorization"] = auth
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        extra: dict[str, Any] = {}
        if self.access.ssl is not None:
            extra["ssl"] = self.access.ssl
            if self.access.tls_server_name:
                extra["server_hostname"] = self.access.tls_server_name
        return await self._open(stream).request(
            method, self.access.server + path, params=query_string(query), data=data, headers=headers,
            timeout=timeout, **extra,
        )

    async def close(self) -> None:
        for session in (self._session, self._streams):
            if session is not None:
                await session.close()
        self._session = self._streams = None

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> None:
        await self.close()
