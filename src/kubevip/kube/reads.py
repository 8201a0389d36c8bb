"""Reads for the operator's commands (`kubevip status`, live `kubevip explain`): one GET, or a paged list."""

from __future__ import annotations

from typing import Any

import aiohttp

from kubevip.errors import KubevipError
from kubevip.kube.errors import NotFound, read_json
from kubevip.kube.rest import Query, RestClient

PAGE = 500
TIMEOUT = aiohttp.ClientTimeout(total=30)


async def get(api: RestClient, path: str, query: Query | None = None) -> dict[str, Any] | None:
    """The object at `path`, None when it does not exist (404). An error status raises the one mapping's
    class (kube/errors.py), whose message names the path and the status."""
    try:
        resp = await api.request("GET", path, query=query, timeout=TIMEOUT)
        return await read_json(resp, f"GET {path}", ok=(200,))
    except NotFound:
        return None
    except ValueError as exc:  # not JSON, or not an object: a proxy's error page, a truncated answer
        raise KubevipError(f"GET {path}: {exc}") from None
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise KubevipError(
            f"GET {path}: cannot reach the API server {api.server}: {exc or type(exc).__name__}"
        ) from None


async def items(api: RestClient, path: str, query: Query | None = None) -> list[dict[str, Any]]:
    """Every item of a list, page by page; a missing resource type (404) is an empty list."""
    out: list[dict[str, Any]] = []
    token = ""
    while True:
        q: dict[str, str | int | bool | None] = {**(query or {}), "limit": PAGE, "continue": token or None}
        doc = await get(api, path, q)
        if doc is None:
            return out
        out += [i for i in doc.get("items") or [] if isinstance(i, dict)]
        token = str((doc.get("metadata") or {}).get("continue") or "")
        if not token:
            return out
