"""Writes the agent's reports: Service status, the `kube-vip.io/vipHost` annotation, and Events."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from kubevip.core.announced import ANNOTATION_VIP_HOST_IPV6
from kubevip.core.views import StatusCondition
from kubevip.kube.errors import Conflict, read_json
from kubevip.kube.rest import RestClient

log = logging.getLogger(__name__)

ANNOTATION_VIP_HOST = "kube-vip.io/vipHost"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
COMPONENT = "kube-vip"


async def _check(resp: Any, what: str, ok: tuple[int, ...] = (200, 201)) -> int:
    """The status of a write; anything else raises the mapped kube.errors.ApiError."""
    status = int(resp.status)
    await read_json(resp, what, ok)
    return status


async def _json(resp: Any, what: str, ok: tuple[int, ...]) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of a response whose status is in `ok`, else the mapped kube.errors.ApiError."""
    status = int(resp.status)
    return status, await read_json(resp, what, ok)


def _version(doc: dict[str, Any]) -> str:
    return str((doc.get("metadata") or {}).get("resourceVersion") or "")


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

    async def vip_host(
        self, namespace: str, name: str, host: str | None, host_ipv6: str | None = None
    ) -> None:
        """`kube-vip.io/vipHost` and `kube-vip.io/vipHost-ipv6` (None removes an annotation)."""
        body = {"metadata": {"annotations": {ANNOTATION_VIP_HOST: host, ANNOTATION_VIP_HOST_IPV6: host_ipv6}}}
        resp = await self.api.request(
            "PATCH", f"/api/v1/namespaces/{namespace}/services/{name}", body=body, content_type=MERGE_PATCH,
            timeout=self.timeout,
        )
        self.writes += 1
        await _check(resp, f"annotation {ANNOTATION_VIP_HOST} of Service {namespace}/{name}")

    async def service_conditions(
        self, namespace: str, name: str, conditions: tuple[StatusCondition, ...], remove: tuple[str, ...],
    ) -> None:
        """Set our `status.conditions` entries and drop `remove`d types: a strategic merge patch keyed by
        type, so other controllers' conditions stay."""
        entries: list[dict[str, str]] = [
            {"type": c.type, "status": c.status, "reason": c.reason, "message": c.message,
             "lastTransitionTime": c.last_transition}
            for c in conditions
        ]
        entries += [{"type": t, "$patch": "delete"} for t in remove]
        resp = await self.api.request(
            "PATCH", f"/api/v1/namespaces/{namespace}/services/{name}/status",
            body={"status": {"conditions": entries}}, content_type=STRATEGIC_PATCH, timeout=self.timeout,
        )
        self.writes += 1
        await _check(resp, f"status.conditions of Service {namespace}/{name}")

    async def agent_report(
        self, namespace: str, name: str, labels: dict[str, str], annotations: dict[str, str],
        holder: str, duration: int, resource_version: str = "",
    ) -> str:
        """Create or replace this node's report Lease (core/report.py); returns its new resourceVersion.

        PUT with the version last written (Leases are written with PUT only: the agent's RBAC grants no
        patch); without one, or on a conflict (a previous process of this node wrote it), one GET learns
        the current version first, and a missing Lease is created."""
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        spec: dict[str, Any] = {"holderIdentity": holder or None, "leaseDurationSeconds": duration,
                                "renewTime": now}
        what = f"Lease {namespace}/{name}"
        for _ in range(2):
            if not resource_version:
                resp = await self.api.request("GET", f"{path}/{name}", timeout=self.timeout)
                status, doc = await _json(resp, what, ok=(200, 404))
                if status == 404:
                    body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                            "metadata": {"name": name, "namespace": namespace, "labels": labels,
                                         "annotations": annotations},
                            "spec": {**spec, "acquireTime": now}}
                    resp = await self.api.request("POST", path, body=body, timeout=self.timeout)
                    self.writes += 1
                    status, doc = await _json(resp, what, ok=(200, 201, 409))
                    if status == 409:
                        continue  # created meanwhile: read it again
                    return _version(doc)
                resource_version = _version(doc)
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": name, "namespace": namespace, "labels": labels,
                                 "annotations": annotations, "resourceVersion": resource_version},
                    "spec": spec}
            resp = await self.api.request("PUT", f"{path}/{name}", body=body, timeout=self.timeout)
            self.writes += 1
            status, doc = await _json(resp, what, ok=(200, 404, 409))
            if status == 200:
                return _version(doc)
            resource_version = ""  # conflict or deleted: read it again
        raise Conflict(409, what, "changed by someone else twice in a row")

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
        *, count: int = 1, first: float | None = None, last: float | None = None,
    ) -> bool:
        """Create an Event named `name`; False when it exists already (the same condition, once).
        `count` occurrences between wall-clock instants `first` and `last` (default: now)."""
        now = _stamp(None)
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
            "firstTimestamp": _stamp(first) if first is not None else now,
            "lastTimestamp": _stamp(last) if last is not None else now,
            "count": count,
        }
        resp = await self.api.request(
            "POST", f"/api/v1/namespaces/{namespace}/events", body=body, timeout=self.timeout
        )
        self.writes += 1
        status = await _check(resp, f"Event {namespace}/{name}", ok=(200, 201, 409))
        return status != 409


def _stamp(wall: float | None) -> str:
    at = dt.datetime.now(dt.UTC) if wall is None else dt.datetime.fromtimestamp(wall, dt.UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def dumps(obj: object) -> str:
    return json.dumps(obj, sort_keys=True)
