"""Nodes for placement: one watch on /api/v1/nodes (the same Reflector as every other watch), and each
node's network, published by its agent on a Lease `kubevip-network-<node>` in the lease namespace
(annotation `kubevip.io/network`, docs/placement.md): the agent may write Leases there, and has no right
to patch Nodes (least privilege, manifests/rbac.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import ipaddress
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kubevip.core.nodes import (
    ANNOTATION_NETWORK,
    NodeNetwork,
    NodeView,
    network,
    node_from_dict,
    parse_network,
)
from kubevip.core.views import IPFamily
from kubevip.errors import InputError, NetworkError
from kubevip.kube.errors import TRANSIENT, NotFound, read_json
from kubevip.kube.rest import RestClient
from kubevip.kube.watch import Consumer, Reflector, fan_out
from kubevip.net.addresses import AddressManager
from kubevip.net.interfaces import link_names
from kubevip.net.namespace import OWN, Netns

log = logging.getLogger(__name__)

NETWORK_LABEL = "kubevip.io/network"  # on the Leases that carry a node's network
NODE_ANNOTATION = "kubevip.io/node"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
PUBLISH_EVERY = 10.0  # seconds between looks at this node's own interfaces (addresses come and go)


class NodeSource:
    """The latest view of every Node; `changed()` is called whenever one that matters changed."""

    def __init__(
        self, api: RestClient, changed: Callable[[], None], broken: Callable[[str, str, str], None],
        on_restart: Callable[[str], None] | None = None, namespace: str = "kube-system",
        also: Consumer | None = None,
    ) -> None:
        """`also`: another consumer of the same Node watch (the address policy's facts): one watch."""
        self.nodes: dict[str, NodeView] = {}
        self.networks: dict[str, NodeNetwork] = {}  # node -> network from its Lease
        self.namespace = namespace
        self._changed = changed
        self._broken = broken
        mine: Consumer = (self._replace, self._event)
        self.reflector = Reflector("nodes", api, "/api/v1/nodes", *(fan_out(mine, also) if also else mine),
                                   on_restart=on_restart)
        self.lease_reflector = Reflector(
            "network leases", api, LEASES.format(ns=namespace), self._replace_leases, self._lease_event,
            on_restart=on_restart, query={"labelSelector": NETWORK_LABEL},
        )

    @property
    def reflectors(self) -> list[Reflector]:
        return [self.reflector, self.lease_reflector]

    def _network_of(self, obj: dict[str, Any]) -> tuple[str, NodeNetwork | None]:
        ann = (obj.get("metadata") or {}).get("annotations") or {}
        node = str(ann.get(NODE_ANNOTATION, ""))
        try:
            return node, parse_network(str(ann.get(ANNOTATION_NETWORK, "")))
        except InputError as exc:
            log.warning("network Lease of node %s: %s (its network counts as unknown)", node, exc)
            return node, None

    def _lease_event(self, type_: str, obj: dict[str, Any]) -> None:
        node, net = self._network_of(obj)
        if not node:
            return
        old = self.networks.get(node)
        if type_ == "DELETED" or net is None:
            self.networks.pop(node, None)
        else:
            self.networks[node] = net
        if old != self.networks.get(node):
            self._changed()

    def _replace_leases(self, items: Iterable[dict[str, Any]]) -> None:
        new: dict[str, NodeNetwork] = {}
        for obj in items:
            node, net = self._network_of(obj)
            if node and net is not None:
                new[node] = net
        if new != self.networks:
            self.networks = new
            self._changed()

    def _view(self, obj: dict[str, Any]) -> NodeView | None:
        try:
            view = node_from_dict(obj)
        except InputError as exc:
            name = str((obj.get("metadata") or {}).get("name", ""))
            log.warning("Node %s is malformed, ignored: %s", name, exc)
            self._broken("Node", f"/{name}", str(exc))
            return None
        if view.network_error:
            log.warning("Node %s: %s (its network counts as unknown)", view.name, view.network_error)
        return view

    def _event(self, type_: str, obj: dict[str, Any]) -> None:
        view = self._view(obj)
        if view is None:
            return
        old = self.nodes.get(view.name)
        if type_ == "DELETED":
            self.nodes.pop(view.name, None)
        else:
            self.nodes[view.name] = view
        # Heartbeats (status updates) rewrite Nodes every few seconds: only what placement reads counts.
        if old != (None if type_ == "DELETED" else view):
            self._changed()

    def _replace(self, items: Iterable[dict[str, Any]]) -> None:
        new = {v.name: v for obj in items if (v := self._view(obj)) is not None}
        if new != self.nodes:
            self.nodes = new
            self._changed()

    def snapshot(self) -> Mapping[str, NodeView]:
        """Every Node, with the network its agent published (its Lease wins over a Node annotation)."""
        out = dict(self.nodes)
        for name, net in self.networks.items():
            view = out.get(name)
            if view is not None:
                out[name] = dataclasses.replace(view, network=net, network_error="")
        return out

    @property
    def synced(self) -> bool:
        return all(r.synced.is_set() for r in self.reflectors)


def own_network(interfaces: Mapping[IPFamily, str], ns: Netns = OWN) -> NodeNetwork:
    """This node's network as published: per family, the VIP interface and its prefixes (without the
    VIPs kubevip added itself), and every link name (blocking: netlink)."""
    fams: dict[IPFamily, tuple[str, list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]]] = {}
    for fam, ifname in interfaces.items():
        try:
            # One dump of the interface (this runs every PUBLISH_EVERY on a node holding every VIP).
            owned, others = AddressManager(ifname, ns).owned_and_others()
            mine = {ip for ip, _ in owned}
            addrs = [ipaddress.ip_interface(a) for a in others if a[0] not in mine]
        except NetworkError as exc:
            log.warning("cannot read addresses of %s: %s", ifname, exc)
            continue
        fams[fam] = (ifname, addrs)
    return network(fams, link_names(ns))


def network_lease_name(node: str) -> str:
    """The Lease carrying `node`'s network (hashed when the name would be too long)."""
    name = f"kubevip-network-{node}"
    if len(name) <= 253:
        return name
    return f"kubevip-network-{hashlib.blake2b(node.encode(), digest_size=10).hexdigest()}"


async def publish(api: RestClient, namespace: str, node: str, net: NodeNetwork) -> bool:
    """Write `net` on our network Lease unless it already says so (create, else update guarded by its
    resourceVersion); True when written. kube/'s error classes (TRANSIENT) propagate."""
    text = net.to_json()
    base = LEASES.format(ns=namespace)
    name = network_lease_name(node)
    what = f"network Lease {namespace}/{name}"
    meta: dict[str, Any] = {
        "name": name, "namespace": namespace, "labels": {NETWORK_LABEL: "true"},
        "annotations": {NODE_ANNOTATION: node, ANNOTATION_NETWORK: text},
    }
    body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": {}}
    try:
        current = await read_json(await api.request("GET", f"{base}/{name}", timeout=5.0), what)
    except NotFound:
        await read_json(await api.request("POST", base, body=body, timeout=5.0), what)
        return True
    cur = current.get("metadata") or {}
    if (cur.get("annotations") or {}).get(ANNOTATION_NETWORK) == text:
        return False
    meta["resourceVersion"] = cur.get("resourceVersion")
    await read_json(await api.request("PUT", f"{base}/{name}", body=body, timeout=5.0), what)
    return True


async def publish_loop(
    api: RestClient, node: str, source: NodeSource, interfaces: Callable[[], Any], ns: Netns = OWN
) -> None:
    """Keep our network Lease true: on start, then whenever our interfaces change."""
    while True:
        try:
            ifaces = await interfaces()
            net = await asyncio.to_thread(own_network, ifaces, ns)
            if source.networks.get(node) != net:
                await publish(api, source.namespace, node, net)
        except NetworkError as exc:
            log.warning("cannot read this node's network: %s", exc)
        except TRANSIENT as exc:
            log.warning("cannot publish this node's network: %s", exc)
        await asyncio.sleep(PUBLISH_EVERY)
