"""The one HTTP error mapping: an API server status becomes one exception class, everywhere.

Every room that talks to the API server (agent writes, the Lease electors and cache, `kubevip ipam`,
the control-plane health probe) catches these classes and `TRANSIENT`, never aiohttp's own exceptions:
only `kube/` imports aiohttp's client.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from kubevip.errors import KubevipError


class ApiError(KubevipError):
    """The API server answered with an error status; the message names the request's object."""

    def __init__(self, status: int, what: str, body: str = "", retry_after: float | None = None) -> None:
        self.status = status
        self.what = what
        self.retry_after = retry_after  # seconds, from a Retry-After header (429, 503)
        super().__init__(f"{what}: HTTP {status} {_reason(body)[:300]}".rstrip())


class Unauthorized(ApiError):
    """401: the credentials were refused (the client has re-read its token file once already)."""


class Forbidden(ApiError):
    """403: RBAC does not allow the request."""


class NotFound(ApiError):
    """404: no such object (or namespace)."""


class Conflict(ApiError):
    """409: someone wrote the object since it was read (resourceVersion precondition), or it exists."""


class Gone(ApiError):
    """410: the resourceVersion (of a watch, or a list's continue token) is too old: list again."""


class TooManyRequests(ApiError):
    """429: the API server sheds load (priority and fairness); wait `retry_after` before trying again."""


class ServerError(ApiError):
    """5xx: the API server (or etcd behind it) failed this request."""


_BY_STATUS: dict[int, type[ApiError]] = {
    401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 410: Gone, 429: TooManyRequests,
}

# Errors that mean "the API server did not answer usefully this time": retry (with backoff) later.
# ValueError covers a body that is not JSON (a proxy's error page, a truncated answer).
TRANSIENT: tuple[type[BaseException], ...] = (
    ApiError, aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError,
)


def api_error(status: int, what: str, body: str = "", retry_after: float | None = None) -> ApiError:
    """The one mapping from an HTTP status (or a watch ERROR event's code) to an exception."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    return cls(status, what, body, retry_after)


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (the API server sends whole seconds; HTTP dates are ignored)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(0.0, seconds)


def _reason(body: str) -> str:
    """The message of a Status body, else the body itself (shortened by the caller)."""
    try:
        doc: Any = json.loads(body)
    except ValueError:
        return body
    if isinstance(doc, dict) and doc.get("kind") == "Status" and doc.get("message"):
        return str(doc["message"])
    return body


async def read_body(resp: Any, what: str, ok: tuple[int, ...] = (200, 201)) -> bytes:
    """The body of `resp` when its status is in `ok`, else the mapped error; releases `resp`."""
    try:
        status = int(resp.status)
        body: bytes = await resp.read()
        after = retry_after(resp.headers.get("Retry-After")) if status in (429, 503) else None
    finally:
        resp.release()
    if status not in ok:
        raise api_error(status, what, body.decode(errors="replace"), after)
    return body


async def read_json(resp: Any, what: str, ok: tuple[int, ...] = (200, 201)) -> dict[str, Any]:
    """The body of `resp` as JSON when its status is in `ok`, else the mapped error; releases `resp`."""
    body = await read_body(resp, what, ok)
    if not body:
        return {}
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError(f"{what}: the answer is not a JSON object")
    return data
