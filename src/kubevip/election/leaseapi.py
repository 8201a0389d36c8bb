"""Thin async access to coordination.k8s.io/v1 Leases: raw JSON in, LeaseRecord out, CAS on update."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from kubevip.election.record import LeaseRecord, parse_lease
from kubevip.errors import ElectionError
from kubevip.kube.rest import RestClient


class Conflict(ElectionError):
    """Someone else wrote the Lease since we read it (HTTP 409), or it already exists on create."""


class LeaseApiError(ElectionError):
    """The API server refused or failed a Lease request; retried by the caller."""

    def __init__(self, status: int, what: str, body: str = "") -> None:
        self.status = status
        super().__init__(f"{what}: HTTP {status} {body[:200]}")


class Gone(LeaseApiError):
    """HTTP 410: the watch's resourceVersion is too old; list again."""


# Errors that mean "the API server did not answer usefully this time": retry until the deadline.
TRANSIENT: tuple[type[BaseException], ...] = (
    LeaseApiError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    OSError,
)


class LeaseApi:
    """Get / create / compare-and-swap / list / watch Leases through one RestClient."""

    def __init__(self, api_client: RestClient, request_timeout: float = 1.0) -> None:
        self._api = api_client
        self.request_timeout = request_timeout

    @staticmethod
    def _path(namespace: str, name: str = "") -> str:
        base = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        return f"{base}/{name}" if name else base

    async def _json(self, resp: Any, what: str, ok: tuple[int, ...] = (200, 201)) -> dict[str, Any] | None:
        try:
            status = int(resp.status)
            body = await resp.read()
        finally:
            resp.release()
        if status in ok:
            data: dict[str, Any] = json.loads(body)
            return data
        if status == 404:
            return None
        if status == 409:
            raise Conflict(f"{what}: conflict (written by someone else since it was read)")
        raise LeaseApiError(status, what, body.decode(errors="replace"))

    def _timeout(self, limit: float | None) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=limit if limit is not None else self.request_timeout)

    async def get(self, namespace: str, name: str, limit: float | None = None) -> LeaseRecord | None:
        """A quorum read of one Lease; None if it does not exist."""
        resp = await self._api.request("GET", self._path(namespace, name), timeout=self._timeout(limit))
        data = await self._json(resp, f"get lease {namespace}/{name}")
        return None if data is None else parse_lease(data)

    async def create(self, body: dict[str, Any], limit: float | None = None) -> LeaseRecord:
        """Create; Conflict if it already exists."""
        meta = body["metadata"]
        resp = await self._api.request(
            "POST", self._path(meta["namespace"]), body=body, timeout=self._timeout(limit)
        )
        data = await self._json(resp, f"create lease {meta['namespace']}/{meta['name']}")
        if data is None:
            raise LeaseApiError(404, f"create lease {meta['namespace']}/{meta['name']}: namespace missing")
        return parse_lease(data)

    async def replace(self, body: dict[str, Any], limit: float | None = None) -> LeaseRecord:
        """Update guarded by body.metadata.resourceVersion; Conflict if anyone wrote in between."""
        meta = body["metadata"]
        if not meta.get("resourceVersion"):
            raise ValueError("replace needs metadata.resourceVersion (optimistic concurrency)")
        resp = await self._api.request(
            "PUT", self._path(meta["namespace"], meta["name"]), body=body, timeout=self._timeout(limit)
        )
        data = await self._json(resp, f"update lease {meta['namespace']}/{meta['name']}")
        if data is None:
            raise Conflict(f"update lease {meta['namespace']}/{meta['name']}: deleted since it was read")
        return parse_lease(data)

    async def delete(
        self, namespace: str, name: str, resource_version: str, limit: float | None = None
    ) -> None:
        """Delete guarded by resourceVersion (a precondition); Conflict if it changed."""
        body = {"preconditions": {"resourceVersion": resource_version}}
        resp = await self._api.request(
            "DELETE", self._path(namespace, name), body=body, timeout=self._timeout(limit)
        )
        await self._json(resp, f"delete lease {namespace}/{name}", ok=(200, 202))

    async def list(
        self, namespace: str, selector: str, limit: float | None = None
    ) -> tuple[list[LeaseRecord], str]:
        """All Leases matching `selector` and the list's resourceVersion (to watch from)."""
        resp = await self._api.request(
            "GET", self._path(namespace), query={"labelSelector": selector}, timeout=self._timeout(limit)
        )
        data = await self._json(resp, f"list leases {namespace} {selector}")
        if data is None:
            return [], ""
        rv = str((data.get("metadata") or {}).get("resourceVersion", ""))
        return [parse_lease(item) for item in data.get("items") or []], rv

    async def watch(
        self,
        namespace: str,
        selector: str,
        resource_version: str,
        idle_timeout: float,
        field_selector: str | None = None,
    ) -> AsyncIterator[tuple[str, LeaseRecord]]:
        """(type, record) events after `resource_version`; Gone when it is too old. Bookmarks are
        yielded as ("BOOKMARK", record) so callers can advance their resourceVersion.
        """
        query = {
            "labelSelector": selector, "fieldSelector": field_selector, "watch": True,
            "resourceVersion": resource_version, "allowWatchBookmarks": True, "timeoutSeconds": 300,
        }
        resp = await self._api.request(
            "GET", self._path(namespace), query=query, timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self.request_timeout, sock_read=idle_timeout
            ),
        )
        try:
            if resp.status != 200:
                body = await resp.read()
                if resp.status == 410:
                    raise Gone(410, "watch leases", body.decode(errors="replace"))
                raise LeaseApiError(int(resp.status), "watch leases", body.decode(errors="replace"))
            async for line in resp.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind = str(event.get("type", ""))
                obj = event.get("object") or {}
                if kind == "ERROR":
                    code = int(obj.get("code") or 0)
                    if code == 410:
                        raise Gone(410, "watch leases", str(obj.get("message", "")))
                    raise LeaseApiError(code, "watch leases", str(obj.get("message", "")))
                yield kind, parse_lease(obj)
        finally:
            resp.release()
