"""A small async Kubernetes REST client over one aiohttp session: paths in, raw responses out.

It replaces kubernetes_asyncio in the agent, whose generated models alone cost ~70 MB RSS; every caller
reads JSON itself, so all a client has to do is build the URL, authenticate and pick the timeout.
"""

from __future__ import annotations

import base64
import json
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

Query = Mapping[str, str | int | bool | None]
# Bound service-account tokens rotate (kubelet refreshes the file well before expiry); client-go
# re-reads its token file once a minute, and so do we.
TOKEN_REFRESH = 60.0


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
        self._token = access.token
        self._token_read = -TOKEN_REFRESH

    @property
    def server(self) -> str:
        return self.access.server

    def _auth(self) -> str:
        a = self.access
        if a.token_file:
            now = time.monotonic()
            if now - self._token_read >= TOKEN_REFRESH or not self._token:
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

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # trust_env=False: no ~/.netrc or proxy variables consulted on every request (py-spy showed
            # it); an agent on the host network talks to its API server directly.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.pool_size), trust_env=False,
            )
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: aiohttp.ClientTimeout | None = None,  # noqa: ASYNC109 (aiohttp applies it per phase)
    ) -> aiohttp.ClientResponse:
        """Send `method path?query` with `body` as JSON; any HTTP status comes back as the response."""
        headers = {"Accept": "application/json", "User-Agent": f"kubevip/{__version__}"}
        auth = self._auth()
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
        if timeout is not None:
            extra["timeout"] = timeout
        return await self._open().request(
            method, self.access.server + path, params=query_string(query), data=data, headers=headers,
            **extra,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> None:
        await self.close()
