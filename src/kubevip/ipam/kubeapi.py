"""The few API calls IPAM makes (Services, its ConfigMap, Events), as raw JSON for speed at 10k Services."""

from __future__ import annotations

import datetime
import socket
from collections.abc import Mapping
from typing import Any

from kubevip.kube.errors import ApiError, Conflict, Gone, NotFound, api_error, read_json
from kubevip.kube.rest import RestClient

JSON = dict[str, Any]
# The one mapping lives in kube.errors; IPAM catches these names.
__all__ = ["JSON", "ApiError", "Conflict", "Gone", "IpamApi", "api_error"]


class IpamApi:
    """Get / patch Services, read one ConfigMap, write Events (the lists and watches are kube.watch
Reflectors in the controller)."""

    def __init__(self, api_client: RestClient, component: str, request_timeout: float = 10.0) -> None:
        self._api = api_client
        self.component = component
        self.instance = socket.gethostname()
        self.timeout = request_timeout

    @property
    def client(self) -> RestClient:
        return self._api

    async def _json(self, resp: Any, what: str, ok: tuple[int, ...] = (200, 201)) -> JSON | None:
        """The answer as JSON, None on 404; any other error status its kube.errors class."""
        try:
            return await read_json(resp, what, ok)
        except NotFound:
            return None

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
