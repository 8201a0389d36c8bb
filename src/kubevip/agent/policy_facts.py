"""The facts behind the address policy (kubevip.core.policy): every Node's addresses, the ServiceCIDRs, the
IPAM pools (`vip_allowed_from_pools`) and this node's own addresses, subnets and gateways.

The agent asks `policy` before every snapshot; `on_change` fires only when the policy itself changed, so a
Node heartbeat costs a comparison, not a pass over every Service.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from kubevip.config import PolicySettings
from kubevip.core.parse import node_addresses_from_dict, service_cidrs_from_dict
from kubevip.core.policy import AddressPolicy
from kubevip.core.pools import PoolConfig, parse_configmap
from kubevip.errors import InputError, KubevipError
from kubevip.ip import IPAddress, IPNetwork
from kubevip.kube.rest import RestClient
from kubevip.kube.watch import Reflector
from kubevip.net.hostfacts import HostFacts, host_facts
from kubevip.net.namespace import OWN, Netns

log = logging.getLogger(__name__)

# The kernel's addresses and routes have no watch here: re-read this often (seconds).
HOST_PERIOD = 10.0
# ServiceCIDR versions, newest first (GA in Kubernetes 1.33, beta since 1.31).
SERVICE_CIDR_VERSIONS = ("v1", "v1beta1")


class PolicyFacts:
    """Collects the facts; `policy` is the current AddressPolicy."""

    def __init__(
        self, api: RestClient | None, settings: PolicySettings, on_change: Callable[[], None],
        ns: Netns = OWN,
    ) -> None:
        self.api = api
        self.settings = settings
        self._on_change = on_change
        self.ns = ns
        self.nodes: dict[str, frozenset[IPAddress]] = {}
        self.cidrs: dict[str, tuple[IPNetwork, ...]] = {}
        self.pools = PoolConfig()
        self.host = HostFacts()
        self.control_plane = set(settings.control_plane)
        if api is not None:
            # The API server this agent talks to (often the control-plane VIP) is never a Service VIP.
            host = api.access.server.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
            with contextlib.suppress(ValueError):
                self.control_plane.add(ipaddress.ip_address(host))
        self.policy = self._build()
        self.reflectors: list[Reflector] = []
        if api is not None:
            self.reflectors.append(Reflector("nodes", api, "/api/v1/nodes", self._nodes_replace,
                                             self._nodes_event))
            if settings.from_pools:
                self.reflectors.append(Reflector(
                    "ipam-configmap", api, f"/api/v1/namespaces/{settings.configmap_namespace}/configmaps",
                    self._cm_replace, self._cm_event,
                    query={"fieldSelector": f"metadata.name={settings.configmap}"},
                ))

    def _build(self) -> AddressPolicy:
        nodes: set[IPAddress] = set(self.host.addresses)
        for addrs in self.nodes.values():
            nodes |= addrs
        cidrs = dict.fromkeys(self.settings.service_cidrs)
        for nets in self.cidrs.values():
            cidrs.update(dict.fromkeys(nets))
        return AddressPolicy(
            node_addresses=frozenset(nodes),
            gateways=self.host.gateways,
            control_plane=frozenset(self.control_plane),
            service_cidrs=tuple(cidrs),
            subnets=self.host.subnets,
            allowed=self.settings.allowed_cidrs,
            from_pools=self.settings.from_pools,
            pools=self.pools,
            interfaces=self.settings.interfaces,
        )

    def _changed(self) -> None:
        new = self._build()
        if new != self.policy:
            self.policy = new
            self._on_change()

    # -- Nodes ---------------------------------------------------------------------------------------

    def _node(self, obj: dict[str, Any]) -> tuple[str, frozenset[IPAddress]] | None:
        try:
            return node_addresses_from_dict(obj)
        except InputError as exc:
            log.warning("Node ignored by the address policy: %s", exc)
            return None

    def _nodes_replace(self, items: list[dict[str, Any]]) -> None:
        self.nodes = {n: a for n, a in filter(None, map(self._node, items))}
        self._changed()

    def _nodes_event(self, type_: str, obj: dict[str, Any]) -> None:
        got = self._node(obj)
        if got is None:
            return
        name, addrs = got
        if type_ == "DELETED":
            self.nodes.pop(name, None)
        elif self.nodes.get(name) == addrs:
            return  # a heartbeat: nothing the policy reads changed
        else:
            self.nodes[name] = addrs
        self._changed()

    # -- ServiceCIDRs --------------------------------------------------------------------------------

    async def discover_service_cidrs(self) -> Reflector | None:
        """A reflector over the ServiceCIDR API when the API server serves it, else None (the setting
        `vip_service_cidrs` is then the only source)."""
        if self.api is None:
            return None
        for version in SERVICE_CIDR_VERSIONS:
            group = f"/apis/networking.k8s.io/{version}"
            try:
                async with asyncio.timeout(10):
                    resp = await self.api.request("GET", group)
                    if resp.status != 200:
                        resp.release()
                        continue
                    doc = await resp.json()
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                log.warning("cannot discover %s: %s", group, exc)
                continue
            if any(r.get("name") == "servicecidrs" for r in doc.get("resources") or ()):
                r = Reflector("servicecidrs", self.api, f"{group}/servicecidrs", self._cidrs_replace,
                              self._cidrs_event)
                self.reflectors.append(r)
                return r
        log.info("the ServiceCIDR API is not served: Service CIDRs come from vip_service_cidrs only")
        return None

    def _cidr(self, obj: dict[str, Any]) -> tuple[str, tuple[IPNetwork, ...]] | None:
        try:
            return service_cidrs_from_dict(obj)
        except InputError as exc:
            log.warning("ServiceCIDR ignored: %s", exc)
            return None

    def _cidrs_replace(self, items: list[dict[str, Any]]) -> None:
        self.cidrs = {n: c for n, c in filter(None, map(self._cidr, items))}
        self._changed()

    def _cidrs_event(self, type_: str, obj: dict[str, Any]) -> None:
        got = self._cidr(obj)
        if got is None:
            return
        if type_ == "DELETED":
            self.cidrs.pop(got[0], None)
        else:
            self.cidrs[got[0]] = got[1]
        self._changed()

    # -- the IPAM ConfigMap's pools ------------------------------------------------------------------

    def _set_configmap(self, obj: dict[str, Any] | None) -> None:
        data = (obj or {}).get("data") or {}
        self.pools = parse_configmap({str(k): str(v) for k, v in data.items()})
        self._changed()

    def _cm_replace(self, items: list[dict[str, Any]]) -> None:
        self._set_configmap(items[0] if items else None)

    def _cm_event(self, type_: str, obj: dict[str, Any]) -> None:
        self._set_configmap(None if type_ == "DELETED" else obj)

    # -- this node's kernel --------------------------------------------------------------------------

    def _read_host(self) -> HostFacts | None:
        try:
            return host_facts(self.ns)
        except (KubevipError, OSError) as exc:
            log.warning("cannot read this node's addresses for the address policy: %s", exc)
            return None

    async def refresh_host(self) -> None:
        """Re-read this node's addresses, subnets and gateways (netlink, in a thread); the policy follows."""
        facts = await asyncio.to_thread(self._read_host)
        if facts is not None:
            self.host = facts
            self._changed()

    async def host_loop(self, period: float = HOST_PERIOD) -> None:
        while True:
            await asyncio.sleep(period)
            await self.refresh_host()
