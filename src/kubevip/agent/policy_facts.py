"""The facts behind this agent's address policy (kubevip.core.policy): the cluster's (kube/clusterfacts.py)
and this node's own addresses, subnets and default gateways (net/hostfacts.py, re-read periodically).

The agent asks `policy` before every snapshot; `on_change` fires only when the policy itself changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Callable

from kubevip.config import PolicySettings
from kubevip.core.policy import AddressPolicy
from kubevip.errors import KubevipError
from kubevip.ip import IPAddress
from kubevip.kube.clusterfacts import ClusterFacts
from kubevip.kube.rest import RestClient
from kubevip.kube.watch import Consumer, Reflector
from kubevip.net.hostfacts import HostFacts, host_facts
from kubevip.net.namespace import OWN, Netns

log = logging.getLogger(__name__)

# The kernel's addresses and routes have no watch here: re-read this often (seconds).
HOST_PERIOD = 10.0


def api_address(api: RestClient) -> IPAddress | None:
    """The API server's address when the client names it by IP (often the control-plane VIP)."""
    host = api.access.server.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host)
    return None


class PolicyFacts:
    """Collects the facts; `policy` is the current AddressPolicy."""

    def __init__(
        self, api: RestClient | None, settings: PolicySettings, on_change: Callable[[], None],
        ns: Netns = OWN, *, watch_nodes: bool = True,
    ) -> None:
        self.settings = settings
        self._on_change = on_change
        self.ns = ns
        self.host = HostFacts()
        self.control_plane = set(settings.control_plane)
        self.cluster: ClusterFacts | None = None
        if api is not None:
            # The API server this agent talks to is never a Service VIP.
            if (addr := api_address(api)) is not None:
                self.control_plane.add(addr)
            cm = (settings.configmap_namespace, settings.configmap) if settings.from_pools else None
            self.cluster = ClusterFacts(api, self._changed, cm, watch_nodes=watch_nodes)
        self.policy = self._build()

    @property
    def node_handlers(self) -> Consumer | None:
        """What a shared Node watch feeds (with `watch_nodes=False`); None without an API server."""
        return self.cluster.node_handlers if self.cluster is not None else None

    @property
    def reflectors(self) -> list[Reflector]:
        return self.cluster.reflectors if self.cluster is not None else []

    async def discover_service_cidrs(self) -> None:
        if self.cluster is not None:
            await self.cluster.discover_service_cidrs()

    def _build(self) -> AddressPolicy:
        c = self.cluster
        cidrs = dict.fromkeys(self.settings.service_cidrs)
        if c is not None:
            cidrs.update(dict.fromkeys(c.service_cidrs()))
        return AddressPolicy(
            node_addresses=self.host.addresses | (c.node_addresses() if c is not None else frozenset()),
            gateways=self.host.gateways,
            control_plane=frozenset(self.control_plane),
            service_cidrs=tuple(cidrs),
            subnets=self.host.subnets,
            allowed=self.settings.allowed_cidrs,
            from_pools=self.settings.from_pools,
            pools=c.pools if c is not None else AddressPolicy().pools,
            interfaces=self.settings.interfaces,
        )

    def _changed(self) -> None:
        new = self._build()
        if new != self.policy:
            self.policy = new
            self._on_change()

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
