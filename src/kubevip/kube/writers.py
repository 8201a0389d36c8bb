"""Writes the agent's reports: Service status, the `kube-vip.io/vipHost` annotation, and Events."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from kubevip.kube.errors import read_json
from kubevip.kube.rest import RestClient

log = logging.getLogger(__name__)

ANNOTATION_VIP_HOST = "kube-vip.io/vipHost"
MERGE_PATCH = "application/merge-patch+json"
COMPONENT = "kube-vip"


async def _check(resp: Any, what: str, ok: tuple[int, ...] = (200, 201)) -> int:
    """The status of a write; anything else raises the mapped kube.errors.ApiError."""
    status = int(resp.status)
    await read_json(resp, what, ok)
    return status


def status_patch(ingress: tuple[str, ...]) -> dict[str, Any]:
    """status.loadBalancer.ingress listing exactly `ingress`, each with ipMode VIP."""
    return {"status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"} for ip in ingress]}}}


class Writer:
    """Thin, typed writes through one client (merge patches: we touch only our fields)."""

    def __init__(self, api: RestClient, node: str, timeout: float = 5.0) -> None:
        self.api = api
        self.node = node
        self.timeout = timeout
        self.writes = 0

    async def service_status(self, namespace: str, name: str, ingress: tuple[str, ...]) -> None:
        resp = await self.api.request(
            "PATCH", f"/api/v1/namespaces/{namespace}/services/{name}/status", body=status_patch(ingress),
            content_type=MERGE_PATCH, timeout=self.timeout,
        )
        self.writes += 1
        await _check(resp, f"status of Service {namespace}/{name}")

    async def vip_host(self, namespace: str, name: str, host: str | None) -> None:
        body = {"metadata": {"annotations": {ANNOTATION_VIP_HOST: host}}}
        resp = await self.api.request(
            "PATCH", f"/api/v1/namespaces/{namespace}/services/{name}", body=body, content_type=MERGE_PATCH,
            timeout=self.timeout,
        )
        self.writes += 1
        await _check(resp, f"annotation {ANNOTATION_VIP_HOST} of Service {namespace}/{name}")

    async def annotations(self, namespace: str, name: str, values: dict[str, str | None]) -> None:
        """Set (or, with None, remove) annotations of a Service in one merge patch."""
        body = {"metadata": {"annotations": values}}
        resp = await self.api.request(
            "PATCH", f"/api/v1/namespaces/{namespace}/services/{name}", body=body, content_type=MERGE_PATCH,
            timeout=self.timeout,
        )
        self.writes += 1
        await _check(resp, f"annotations {sorted(values)} of Service {namespace}/{name}")

    async def event(
        self, namespace: str, service: str, uid: str, name: str, type_: str, reason: str, message: str,
    ) -> bool:
        """Create an Event named `name`; False when it exists already (the same condition, once)."""
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {"apiVersion": "v1", "kind": "Service", "name": service, "namespace": namespace,
                               "uid": uid},
            "type": type_,
            "reason": reason,
            "message": message,
            "source": {"component": COMPONENT, "host": self.node},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.node,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        resp = await self.api.request(
            "POST", f"/api/v1/namespaces/{namespace}/events", body=body, timeout=self.timeout
        )
        self.writes += 1
        status = await _check(resp, f"Event {namespace}/{name}", ok=(200, 201, 409))
        return status != 409


def dumps(obj: object) -> str:
    return json.dumps(obj, sort_keys=True)
