"""A Lease as a small frozen view, plus the bodies we write; pure (no I/O, no clocks)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

# Precise lease duration, "<ms> <renewTime>": spec.leaseDurationSeconds is an integer, our defaults are not.
DURATION_MS_ANNOTATION = "kubevip.io/lease-duration-ms"


@dataclass(frozen=True)
class LeaseRecord:
    """What we need from a coordination.k8s.io/v1 Lease."""

    namespace: str
    name: str
    resource_version: str
    holder: str | None
    duration: float | None
    transitions: int
    acquire_time: str | None = None
    renew_time: str | None = None
    labels: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    annotations: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def held(self) -> bool:
        return bool(self.holder)


def parse_lease(obj: dict[str, Any]) -> LeaseRecord:
    """Lease JSON (as the API server returns it) -> LeaseRecord; missing fields take Kubernetes defaults."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    annotations = dict(meta.get("annotations") or {})
    duration: float | None = None
    seconds = spec.get("leaseDurationSeconds")
    if isinstance(seconds, int) and seconds > 0:
        duration = float(seconds)
    precise = _precise_duration(annotations.get(DURATION_MS_ANNOTATION, ""), spec.get("renewTime"))
    if precise is not None:
        duration = precise
    return LeaseRecord(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        resource_version=str(meta.get("resourceVersion", "")),
        holder=spec.get("holderIdentity") or None,
        duration=duration,
        transitions=int(spec.get("leaseTransitions") or 0),
        acquire_time=spec.get("acquireTime"),
        renew_time=spec.get("renewTime"),
        labels=dict(meta.get("labels") or {}),
        annotations=annotations,
    )


def _precise_duration(value: str, renew_time: object) -> float | None:
    """The annotation "<ms> <renewTime>" counts only if that renewTime is the Lease's current one.

    A client-go peer (kube-vip) that takes over keeps our annotations but rewrites renewTime, so a
    stale precise value is then ignored and its integer leaseDurationSeconds rules (the safe side).
    """
    ms, _, stamp = value.partition(" ")
    if not ms.isdigit() or int(ms) <= 0 or stamp != renew_time:
        return None
    return int(ms) / 1000.0


def micro_time(wall: float) -> str:
    """RFC 3339 MicroTime as Lease.spec.*Time expects."""
    return dt.datetime.fromtimestamp(wall, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_body(
    namespace: str,
    name: str,
    *,
    holder: str | None,
    duration: float,
    transitions: int,
    acquire_wall: float | None,
    renew_wall: float,
    resource_version: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A full Lease body; with `resource_version` the API server rejects it if anyone wrote in between."""
    ann = dict(annotations or {})
    renew = micro_time(renew_wall)
    ann[DURATION_MS_ANNOTATION] = f"{max(1, round(duration * 1000))} {renew}"
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "annotations": ann}
    if labels:
        meta["labels"] = dict(labels)
    if resource_version:
        meta["resourceVersion"] = resource_version
    spec: dict[str, Any] = {
        "leaseDurationSeconds": max(1, math.ceil(duration)),
        "leaseTransitions": transitions,
        "renewTime": renew,
    }
    if holder:
        spec["holderIdentity"] = holder
    if acquire_wall is not None:
        spec["acquireTime"] = micro_time(acquire_wall)
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}


def released_body(
    rec: LeaseRecord, renew_wall: float, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    """`rec` with no holder (handed back or marked expired), guarded by its resourceVersion."""
    return lease_body(
        rec.namespace,
        rec.name,
        holder=None,
        duration=1.0,
        transitions=rec.transitions,
        acquire_wall=None,
        renew_wall=renew_wall,
        resource_version=rec.resource_version,
        labels=rec.labels,
        annotations=rec.annotations if annotations is None else annotations,
    )


def renewed_body(rec: LeaseRecord, duration: float, renew_wall: float) -> dict[str, Any]:
    """`rec` renewed by its holder: same holder, acquireTime and transitions, guarded by its version."""
    body = lease_body(
        rec.namespace,
        rec.name,
        holder=rec.holder,
        duration=duration,
        transitions=rec.transitions,
        acquire_wall=None,
        renew_wall=renew_wall,
        resource_version=rec.resource_version,
        labels=rec.labels,
        annotations=rec.annotations,
    )
    if rec.acquire_time:
        body["spec"]["acquireTime"] = rec.acquire_time
    return body
