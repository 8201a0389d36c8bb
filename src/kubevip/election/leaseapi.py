"""Thin async access to coordination.k8s.io/v1 Leases: raw JSON in, LeaseRecord out, CAS on update."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from kubevip.election.record import LeaseRecord, parse_lease
from kubevip.kube.errors import TRANSIENT, ApiError, Conflict, Gone, NotFound, read_json
from kubevip.kube.rest import RestClient
from kubevip.kube.watch import watch_events

# The kube/ error classes under the names the electors use: one mapping, kube.errors.api_error.
LeaseApiError = ApiError
__all__ = ["TRANSIENT", "Conflict", "Gone", "LeaseApi", "LeaseApiError"]


class LeaseApi:
    """Get / create / compare-and-swap / watch Leases through one RestClient (the Lease cache lists and
    watches with kube.watch.Reflector)."""

    def __init__(self, api_client: RestClient, request_timeout: float = 1.0) -> None:
        self._api = api_client
        self.request_timeout = request_timeout

    @property
    def client(self) -> RestClient:
        return self._api

    @staticmethod
    def _path(namespace: str, name: str = "") -> str:
        base = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        return f"{base}/{name}" if name else base

    async def _json(self, resp: Any, what: str, ok: tuple[int, ...] = (200, 201)) -> dict[str, Any] | None:
        """The answer as JSON, None on 404; Conflict on 409, any other status its kube.errors class."""
        try:
            return await read_json(resp, what, ok)
        except NotFound:
            return None

    def _timeout(self, limit: float | None) -> float:
        return limit if limit is not None else self.request_timeout

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
            raise NotFound(404, f"create lease {meta['namespace']}/{meta['name']}: namespace missing")
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
            what = f"update lease {meta['namespace']}/{meta['name']}"
            raise Conflict(404, what, "deleted since it was read")
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
        query = {"labelSelector": selector or None, "fieldSelector": field_selector}
        async for kind, obj in watch_events(
            self._api, self._path(namespace), "leases", resource_version, query=query,
            idle_timeout=idle_timeout, connect_timeout=self.request_timeout,
        ):
            yield kind, parse_lease(obj)
