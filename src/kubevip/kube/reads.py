"""Reads for the operator's commands (`kubevip status`, live `kubevip explain`): one GET, or a paged list."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from kubevip.errors import KubevipError
from kubevip.kube.rest import Query, RestClient

PAGE = 500
TIMEOUT = aiohttp.ClientTimeout(total=30)


class ReadError(KubevipError):
    """The API server refused a read; the message names the path and the status."""


async def get(api: RestClient, path: str, query: Query | None = None) -> dict[str, Any] | None:
    """The object at `path`, None when it does not exist (404)."""
    try:
        resp = await api.request("GET", path, query=query, timeout=TIMEOUT)
        try:
            status = int(resp.status)
            body = await resp.read()
        finally:
            resp.release()
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise ReadError(
            f"GET {path}: cannot reach the API server {api.server}: {exc or type(exc).__name__}"
        ) from None
    if status == 404:
        return None
    if status != 200:
        raise ReadError(f"GET {path}: HTTP {status} {body.decode(errors='replace')[:300]}")
    doc = json.loads(body)
    if not isinstance(doc, dict):
        raise ReadError(f"GET {path}: expected a JSON object")
    return doc


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
