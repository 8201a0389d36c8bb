"""Nodes as placement needs them: labels, cordon, readiness, and the network an agent published.

Each agent publishes on its own Node (annotation `kubevip.io/network`, JSON) the interface it would put
a VIP of each family on, that interface's prefixes, and the names of its links, so that every agent
can judge every node's subnet eligibility from the same data (docs/placement.md). Pure.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubevip.core.views import IPFamily
from kubevip.errors import InputError
from kubevip.ip import IPNetwork

ANNOTATION_NETWORK = "kubevip.io/network"
MAX_LINKS = 128  # more links (veths of a busy node) are not listed; `links_complete` says so
MAX_PREFIXES = 32



@dataclass(frozen=True)
class FamilyNetwork:
    """The interface a node puts VIPs of one family on, and the prefixes configured there."""

    interface: str
    prefixes: tuple[IPNetwork, ...]


@dataclass(frozen=True)
class NodeNetwork:
    families: tuple[tuple[IPFamily, FamilyNetwork], ...]
    links: frozenset[str]
    links_complete: bool = True

    def family(self, family: IPFamily) -> FamilyNetwork | None:
        return next((n for f, n in self.families if f == family), None)

    def on_subnet(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        fam = self.family(IPFamily.of(address))
        return fam is not None and any(address in p for p in fam.prefixes)

    def to_json(self) -> str:
        doc: dict[str, Any] = {
            f.value: {"interface": n.interface, "prefixes": [str(p) for p in n.prefixes]}
            for f, n in self.families
        }
        doc["links"] = sorted(self.links)
        if not self.links_complete:
            doc["linksComplete"] = False
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def network(
    families: Mapping[IPFamily, tuple[str, Iterable[ipaddress.IPv4Interface | ipaddress.IPv6Interface]]],
    links: Iterable[str],
) -> NodeNetwork:
    """What an agent publishes: per family (interface, its configured addresses), and its link names.
    Host routes (/32, /128: VIPs, not subnets) and IPv6 link-local prefixes are left out."""
    fams: list[tuple[IPFamily, FamilyNetwork]] = []
    for fam in sorted(families, key=lambda f: f.value):
        ifname, addrs = families[fam]
        nets = sorted(
            {a.network for a in addrs
             if a.version == (4 if fam == IPFamily.IPV4 else 6)
             and a.network.prefixlen < a.max_prefixlen and not a.ip.is_link_local},
            key=lambda n: (int(n.network_address), n.prefixlen),
        )
        fams.append((fam, FamilyNetwork(ifname, tuple(nets[:MAX_PREFIXES]))))
    names = sorted(set(links))
    return NodeNetwork(tuple(fams), frozenset(names[:MAX_LINKS]), len(names) <= MAX_LINKS)


def parse_network(text: str) -> NodeNetwork:
    """The annotation's value; InputError names what is wrong."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise InputError(f"annotation {ANNOTATION_NETWORK}: not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InputError(f"annotation {ANNOTATION_NETWORK}: expected a JSON object")
    fams: list[tuple[IPFamily, FamilyNetwork]] = []
    for fam in (IPFamily.IPV4, IPFamily.IPV6):
        entry = doc.get(fam.value)
        if entry is None:
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("interface"), str):
            raise InputError(f"annotation {ANNOTATION_NETWORK}: {fam.value} needs an interface")
        raw = entry.get("prefixes") or []
        if not isinstance(raw, list) or len(raw) > MAX_PREFIXES:
            raise InputError(f"annotation {ANNOTATION_NETWORK}: {fam.value}.prefixes must be a short list")
        try:
            nets = tuple(ipaddress.ip_network(str(p), strict=False) for p in raw)
        except ValueError as exc:
            raise InputError(f"annotation {ANNOTATION_NETWORK}: {fam.value}.prefixes: {exc}") from None
        if any(IPFamily.of(n.network_address) != fam for n in nets):
            raise InputError(f"annotation {ANNOTATION_NETWORK}: {fam.value}.prefixes holds another family")
        fams.append((fam, FamilyNetwork(entry["interface"], nets)))
    links = doc.get("links") or []
    if not isinstance(links, list) or not all(isinstance(x, str) for x in links):
        raise InputError(f"annotation {ANNOTATION_NETWORK}: links must be a list of names")
    complete = doc.get("linksComplete", True) is not False and len(links) <= MAX_LINKS
    return NodeNetwork(tuple(fams), frozenset(links[:MAX_LINKS]), complete)


@dataclass(frozen=True)
class NodeView:
    name: str
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    unschedulable: bool = False
    ready: bool = True
    # None: the node published nothing (no kubevip agent yet) or something unreadable (see `network_error`).
    network: NodeNetwork | None = None
    network_error: str = ""

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    def annotation(self, key: str) -> str | None:
        for k, v in self.annotations:
            if k == key:
                return v
        return None


def _strings(raw: object, what: str) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise InputError(f"metadata.{what} must be a map")
    return tuple(sorted((str(k), str(v)) for k, v in raw.items()))


def node_from_dict(obj: Mapping[str, Any]) -> NodeView:
    """A Node object (as the API returns it) as a NodeView; InputError names the malformed field."""
    meta = obj.get("metadata") or {}
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise InputError("Node without metadata.name")
    labels = _strings(meta.get("labels"), "labels")
    annotations = _strings(meta.get("annotations"), "annotations")
    spec = obj.get("spec") or {}
    unschedulable = bool(spec.get("unschedulable")) if isinstance(spec, dict) else False
    ready = True
    status = obj.get("status") or {}
    for c in (status.get("conditions") or []) if isinstance(status, dict) else []:
        if isinstance(c, dict) and c.get("type") == "Ready":
            ready = c.get("status") == "True"
    net: NodeNetwork | None = None
    error = ""
    text = dict(annotations).get(ANNOTATION_NETWORK)
    if text is not None:
        try:
            net = parse_network(text)
        except InputError as exc:
            error = str(exc)
    return NodeView(meta["name"], labels, annotations, unschedulable, ready, net, error)
