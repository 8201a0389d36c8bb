"""Which Lease a Service elects on, kube-vip's rule, with the names a tenant gives checked first.

kube-vip (`pkg/lease/lease.go` ServiceName): `kube-vip.io/leaseName: X` is Lease `X` in the Service's
namespace, `ns/X` is Lease `X` in `ns`; without the annotation `kubevip-<service name>`. Sharing the very
same Lease is what lets kube-vip and kubevip pods elect together during a rolling swap.

The annotation is written by whoever may edit the Service, so it is validated before it reaches a URL:
a DNS-1123 subdomain, and `ns/` only naming the Service's own namespace (a tenant must not campaign on,
or overwrite, a Lease of another namespace, such as a node's heartbeat in kube-node-lease).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubevip.core.views import ServiceView

ANNOTATION_LEASE_NAME = "kube-vip.io/leaseName"
# kube-vip's per-Service Lease (svc_election=true): "kubevip-<service name>" in the Service's namespace.
SERVICE_LEASE_PREFIX = "kubevip-"
# Kubernetes object names: DNS-1123 subdomain (Leases), DNS-1123 label (namespaces).
MAX_SUBDOMAIN = 253
MAX_LABEL = 63
# The secondary family of a dual-stack ETP Local Service elects on "<lease>-ipv6" / "-ipv4": room for it.
FAMILY_SUFFIX_ROOM = len("-ipv4")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@dataclass(frozen=True, order=True)
class LeaseRef:
    """A Lease's namespace and name; `explicit` when a Service's annotation (or a setting) chose it."""

    namespace: str
    name: str
    explicit: bool = False

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def subdomain_problem(name: str) -> str:
    """Why `name` is not a DNS-1123 subdomain (a Lease name), or "" when it is."""
    if not name:
        return "empty"
    if len(name) > MAX_SUBDOMAIN:
        return f"longer than {MAX_SUBDOMAIN} characters"
    if not _SUBDOMAIN.fullmatch(name):
        return ("not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', starting and ending"
                " alphanumeric)")
    return ""


def label_problem(name: str) -> str:
    """Why `name` is not a DNS-1123 label (a namespace name), or "" when it is."""
    if not name:
        return "empty"
    if len(name) > MAX_LABEL:
        return f"longer than {MAX_LABEL} characters"
    if not _LABEL.fullmatch(name):
        return "not a DNS-1123 label (lower-case letters, digits and '-', starting and ending alphanumeric)"
    return ""


def split_ref(value: str, default_namespace: str) -> tuple[str, str]:
    """kube-vip's `ns/name` form: (ns, name); a bare name lives in `default_namespace`."""
    ns, sep, name = value.partition("/")
    return (ns, name) if sep else (default_namespace, value)


def ref_problem(value: str, default_namespace: str) -> str:
    """Why `value` (`name` or `ns/name`) names no Lease, or "" when it names one."""
    ns, name = split_ref(value, default_namespace)
    if "/" in name:
        return "at most one '/' (namespace/name)"
    if p := label_problem(ns):
        return f"namespace {ns!r}: {p}"
    if p := subdomain_problem(name):
        return f"name {name!r}: {p}"
    return ""


def annotation_problem(service: ServiceView) -> str:
    """Why the Service's `kube-vip.io/leaseName` is refused, or "" (absent or valid)."""
    value = service.annotation(ANNOTATION_LEASE_NAME)
    if value is None or not value.strip():
        return ""
    value = value.strip()
    if p := ref_problem(value, service.namespace):
        return p
    ns, name = split_ref(value, service.namespace)
    if ns != service.namespace:
        return (f"namespace {ns!r} is not the Service's own ({service.namespace!r}): a Service may only"
                " elect on Leases of its namespace")
    if len(name) > MAX_SUBDOMAIN - FAMILY_SUFFIX_ROOM:
        return f"name longer than {MAX_SUBDOMAIN - FAMILY_SUFFIX_ROOM} characters (room for a family suffix)"
    return ""


def service_lease(service: ServiceView) -> LeaseRef:
    """The Lease the Service elects on (svc_election, or its `leaseName` group); call only when
    `annotation_problem(service)` is "" (a refused Service elects on nothing)."""
    value = (service.annotation(ANNOTATION_LEASE_NAME) or "").strip()
    if value:
        ns, name = split_ref(value, service.namespace)
        return LeaseRef(ns, name, explicit=True)
    return LeaseRef(service.namespace, f"{SERVICE_LEASE_PREFIX}{service.name}")
