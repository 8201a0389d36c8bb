"""Nodes for placement: one watch on /api/v1/nodes (the same Reflector as every other watch), and the
publishing of this node's own network on its Node (annotation `kubevip.io/network`, docs/placement.md).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from kubevip.core.nodes import ANNOTATION_NETWORK, NodeNetwork, NodeView, network, node_from_dict
from kubevip.core.views import IPFamily
from kubevip.errors import InputError, NetworkError
from kubevip.kube.rest import RestClient
from kubevip.kube.watch import Reflector
from kubevip.net.addresses import AddressManager
from kubevip.net.interfaces import interface_networks, link_names
from kubevip.net.namespace import OWN, Netns

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
PUBLISH_EVERY = 10.0  # seconds between looks at this node's own interfaces (addresses come and go)


class NodeSource:
    """The latest view of every Node; `changed()` is called whenever one that matters changed."""

    def __init__(
        self, api: RestClient, changed: Callable[[], None], broken: Callable[[str, str, str], None],
        on_restart: Callable[[str], None] | None = None,
    ) -> None:
        self.nodes: dict[str, NodeView] = {}
        self._changed = changed
        self._broken = broken
        self.reflector = Reflector("nodes", api, "/api/v1/nodes", self._replace, self._event,
                                   on_restart=on_restart)

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

    def _replace(self, items: list[dict[str, Any]]) -> None:
        new = {v.name: v for obj in items if (v := self._view(obj)) is not None}
        if new != self.nodes:
            self.nodes = new
            self._changed()

    def snapshot(self) -> Mapping[str, NodeView]:
        return dict(self.nodes)

    @property
    def synced(self) -> bool:
        return self.reflector.synced.is_set()


def own_network(interfaces: Mapping[IPFamily, str], ns: Netns = OWN) -> NodeNetwork:
    """This node's network as published: per family, the VIP interface and its prefixes (without the
    VIPs kubevip added itself), and every link name (blocking: netlink)."""
    fams: dict[IPFamily, tuple[str, list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]]] = {}
    for fam, ifname in interfaces.items():
        try:
            mine = {ip for ip, _ in AddressManager(ifname, ns).owned()}
            addrs = [a for a in interface_networks(ifname, ns) if a.ip not in mine]
        except NetworkError as exc:
            log.warning("cannot read addresses of %s: %s", ifname, exc)
            continue
        fams[fam] = (ifname, addrs)
    return network(fams, link_names(ns))


async def publish(api: RestClient, node: str, current: NodeView | None, net: NodeNetwork) -> bool:
    """Write `net` on our Node unless it already says so; True when written."""
    text = net.to_json()
    if current is not None and current.annotation(ANNOTATION_NETWORK) == text:
        return False
    body = {"metadata": {"annotations": {ANNOTATION_NETWORK: text}}}
    resp = await api.request("PATCH", f"/api/v1/nodes/{node}", body=body, content_type=MERGE_PATCH,
                             timeout=aiohttp.ClientTimeout(total=5.0))
    try:
        status = resp.status
        detail = (await resp.text())[:300] if status >= 300 else ""
    finally:
        resp.release()
    if status >= 300:
        log.warning("cannot publish %s on Node %s: HTTP %d %s", ANNOTATION_NETWORK, node, status, detail)
        return False
    return True


async def publish_loop(
    api: RestClient, node: str, source: NodeSource, interfaces: Callable[[], Any], ns: Netns = OWN
) -> None:
    """Keep our Node's `kubevip.io/network` true: on start, then whenever our interfaces change."""
    while True:
        try:
            ifaces = await interfaces()
            net = await asyncio.to_thread(own_network, ifaces, ns)
            if source.synced:
                await publish(api, node, source.nodes.get(node), net)
        except (NetworkError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("cannot publish this node's network: %s", exc)
        await asyncio.sleep(PUBLISH_EVERY)
