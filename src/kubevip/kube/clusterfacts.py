"""Cluster facts behind the address policy (kubevip.core.policy): every Node's addresses, the
ServiceCIDRs where the API server serves them, and optionally the IPAM ConfigMap's pools.

Shared by the agent and `kubevip ipam`. `on_change` fires only when a fact the policy reads changed, so a
Node heartbeat costs a comparison, not a pass over every Service.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from kubevip.core.parse import node_addresses_from_dict, service_cidrs_from_dict
from kubevip.core.pools import PoolConfig, parse_configmap
from kubevip.errors import InputError
from kubevip.ip import IPAddress, IPNetwork
from kubevip.kube.errors import TRANSIENT
from kubevip.kube.rest import RestClient
from kubevip.kube.watch import Consumer, Reflector

log = logging.getLogger(__name__)

# ServiceCIDR versions, newest first (GA in Kubernetes 1.33, beta since 1.31).
SERVICE_CIDR_VERSIONS = ("v1", "v1beta1")


class ClusterFacts:
    """Nodes' addresses, ServiceCIDRs and (with `configmap`) the pools; `reflectors` to run."""

    def __init__(
        self, api: RestClient, on_change: Callable[[], None], configmap: tuple[str, str] | None = None,
        *, watch_nodes: bool = True,
    ) -> None:
        """`watch_nodes=False`: the caller feeds `node_handlers` from a Node watch it shares (the agent's
        one Node watch, kube.watch.fan_out)."""
        self.api = api
        self._on_change = on_change
        self.nodes: dict[str, frozenset[IPAddress]] = {}
        self.cidrs: dict[str, tuple[IPNetwork, ...]] = {}
        self.pools = PoolConfig()
        self.node_handlers: Consumer = (self._nodes_replace, self._nodes_event)
        self.reflectors: list[Reflector] = (
            [Reflector("nodes", api, "/api/v1/nodes", *self.node_handlers)] if watch_nodes else []
        )
        if configmap is not None:
            namespace, name = configmap
            self.reflectors.append(Reflector(
                "ipam-configmap", api, f"/api/v1/namespaces/{namespace}/configmaps",
                self._cm_replace, self._cm_event, query={"fieldSelector": f"metadata.name={name}"},
            ))

    def node_addresses(self) -> frozenset[IPAddress]:
        out: set[IPAddress] = set()
        for addrs in self.nodes.values():
            out |= addrs
        return frozenset(out)

    def service_cidrs(self) -> tuple[IPNetwork, ...]:
        out: dict[IPNetwork, None] = {}
        for nets in self.cidrs.values():
            out.update(dict.fromkeys(nets))
        return tuple(out)

    def _changed(self) -> None:
        self._on_change()

    # -- Nodes ---------------------------------------------------------------------------------------

    def _node(self, obj: dict[str, Any]) -> tuple[str, frozenset[IPAddress]] | None:
        try:
            return node_addresses_from_dict(obj)
        except InputError as exc:
            log.warning("Node ignored by the address policy: %s", exc)
            return None

    def _nodes_replace(self, items: Iterable[dict[str, Any]]) -> None:
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
        for version in SERVICE_CIDR_VERSIONS:
            group = f"/apis/networking.k8s.io/{version}"
            try:
                async with asyncio.timeout(10):
                    resp = await self.api.request("GET", group)
                    if resp.status != 200:
                        resp.release()
                        continue
                    doc = await resp.json()
            except TRANSIENT as exc:
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

    def _cidrs_replace(self, items: Iterable[dict[str, Any]]) -> None:
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

    def _cm_replace(self, items: Iterable[dict[str, Any]]) -> None:
        self._set_configmap(next(iter(items), None))

    def _cm_event(self, type_: str, obj: dict[str, Any]) -> None:
        self._set_configmap(None if type_ == "DELETED" else obj)
