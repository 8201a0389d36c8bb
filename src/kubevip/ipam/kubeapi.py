"""The few API calls IPAM makes (Services, its ConfigMap, Events), as raw JSON for speed at 10k Services."""

from __future__ import annotations

import datetime
import json
import socket
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from kubevip.errors import KubevipError
from kubevip.kube.rest import Query, RestClient

JSON = dict[str, Any]


class ApiError(KubevipError):
    """The API server answered with an error status."""

    def __init__(self, status: int, what: str, body: str = "") -> None:
        self.status = status
        super().__init__(f"{what}: HTTP {status} {body[:300]}")


class Conflict(ApiError):
    """409: the object changed since we read it (resourceVersion precondition failed)."""


class Gone(ApiError):
    """410: the watch's resourceVersion is too old; list again."""


def api_error(status: int, what: str, body: str = "") -> ApiError:
    """The error for a failed call or watch event: Conflict on 409, Gone on 410, else ApiError."""
    if status == 409:
        return Conflict(status, what, body)
    if status == 410:
        return Gone(status, what, body)
    return ApiError(status, what, body)


class IpamApi:
    """List / watch / patch Services, read / watch one ConfigMap, write Events."""

    def __init__(self, api_client: RestClient, component: str, request_timeout: float = 10.0) -> None:
        self._api = api_client
        self.component = component
        self.instance = socket.gethostname()
        self.timeout = aiohttp.ClientTimeout(total=request_timeout)

    async def _json(self, resp: Any, what: str, ok: tuple[int, ...] = (200, 201)) -> JSON | None:
        try:
            status = int(resp.status)
            body = await resp.read()
        finally:
            resp.release()
        if status in ok:
            data: JSON = json.loads(body)
            return data
        if status == 404:
            return None
        raise api_error(status, what, body.decode(errors="replace"))

    async def list_services(self) -> tuple[list[JSON], str]:
        resp = await self._api.request("GET", "/api/v1/services", timeout=aiohttp.ClientTimeout(total=120))
        data = await self._json(resp, "list services") or {}
        return list(data.get("items") or []), str((data.get("metadata") or {}).get("resourceVersion", ""))

    async def get_service(self, namespace: str, name: str) -> JSON | None:
        resp = await self._api.request(
            "GET", f"/api/v1/namespaces/{namespace}/services/{name}", timeout=self.timeout)
        return await self._json(resp, f"get service {namespace}/{name}")

    async def patch_service(self, namespace: str, name: str, patch: Mapping[str, Any]) -> JSON | None:
        """JSON merge patch; Conflict when its metadata.resourceVersion is stale; None when deleted."""
        resp = await self._api.request(
            "PATCH", f"/api/v1/namespaces/{namespace}/services/{name}", body=dict(patch),
            content_type="application/merge-patch+json", timeout=self.timeout)
        return await self._json(resp, f"patch service {namespace}/{name}")

    async def get_configmap(self, namespace: str, name: str) -> JSON | None:
        resp = await self._api.request(
            "GET", f"/api/v1/namespaces/{namespace}/configmaps/{name}", timeout=self.timeout)
        return await self._json(resp, f"get configmap {namespace}/{name}")

    async def watch_services(self, resource_version: str) -> AsyncIterator[tuple[str, JSON]]:
        async for ev in self._watch("/api/v1/services", "services", resource_version):
            yield ev

    async def watch_configmap(self, namespace: str, name: str, resource_version: str,
                              ) -> AsyncIterator[tuple[str, JSON]]:
        async for ev in self._watch(f"/api/v1/namespaces/{namespace}/configmaps",
                                    f"configmap {namespace}/{name}", resource_version,
                                    {"fieldSelector": f"metadata.name={name}"}):
            yield ev

    async def list_configmap_version(self, namespace: str, name: str) -> str:
        resp = await self._api.request(
            "GET", f"/api/v1/namespaces/{namespace}/configmaps",
            query={"fieldSelector": f"metadata.name={name}"}, timeout=self.timeout)
        data = await self._json(resp, f"list configmap {namespace}/{name}") or {}
        return str((data.get("metadata") or {}).get("resourceVersion", ""))

    async def _watch(self, path: str, what: str, resource_version: str,
                     query: Query | None = None) -> AsyncIterator[tuple[str, JSON]]:
        """(type, object) events after `resource_version`, BOOKMARK included; Gone when it is too old."""
        resp = await self._api.request(
            "GET", path, query={**(query or {}), "watch": True, "resourceVersion": resource_version,
                                "allowWatchBookmarks": True, "timeoutSeconds": 300},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=330))
        try:
            if resp.status != 200:
                body = (await resp.read()).decode(errors="replace")
                raise api_error(int(resp.status), f"watch {what}", body)
            async for line in resp.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind = str(event.get("type", ""))
                obj = event.get("object") or {}
                if kind == "ERROR":
                    raise api_error(int(obj.get("code") or 0), f"watch {what}", str(obj.get("message", "")))
                yield kind, obj
        finally:
            resp.release()

    async def event(self, involved: Mapping[str, Any], kind: str, event_type: str, reason: str,
                    message: str) -> None:
        """Record a core/v1 Event on `involved` (a Service or the ConfigMap)."""
        meta = involved.get("metadata") or {}
        ns = meta.get("namespace") or "default"
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "metadata": {"generateName": f"{meta.get('name', 'unknown')}.", "namespace": ns},
            "involvedObject": {
                "apiVersion": "v1", "kind": kind, "namespace": ns, "name": meta.get("name"),
                "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion"),
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1000],
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        resp = await self._api.request("POST", f"/api/v1/namespaces/{ns}/events", body=body,
                                       timeout=self.timeout)
        await self._json(resp, f"event on {kind} {ns}/{meta.get('name')}")
