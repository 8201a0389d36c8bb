"""The agent's packet rules: core/egress.py decides, net/nftables.py applies; plus CIDR discovery.

The table is removed at start-up (a previous run's rules name VIPs this run may not hold) and on shutdown;
between the two, every pass replaces it with what the snapshot and the held VIPs call for. Discovery of
pod and Service CIDRs and API server addresses runs only while some Service asks for egress, and again
every `DISCOVERY_PERIOD` (pod CIDRs grow with the Nodes).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from kubevip.core.egress import (
    ClusterNetworks,
    PacketRules,
    discovered_networks,
    egress_enabled,
    node_rules,
)
from kubevip.core.plan import ServiceDecision
from kubevip.core.views import IPAddress, ServiceView
from kubevip.errors import NetworkError
from kubevip.kube.errors import TRANSIENT
from kubevip.kube.rest import RestClient
from kubevip.net.conntrack import forget_flows
from kubevip.net.namespace import OWN, Netns
from kubevip.net.nftables import PacketRuleTable
from kubevip.net.settings import PacketSettings

log = logging.getLogger(__name__)

DISCOVERY_PERIOD = 60.0
# A failed discovery is retried; TRANSIENT covers a body that is not JSON (ValueError).
DISCOVERY_ERRORS: tuple[type[BaseException], ...] = (NetworkError, *TRANSIENT)
_TIMEOUT = 10.0  # seconds per discovery request


async def _items(
    api: RestClient, path: str, query: Mapping[str, str] | None = None, optional: bool = False
) -> list[dict[str, Any]]:
    """The items of a list, [] when the API (e.g. ServiceCIDR before 1.33) is not served. `optional`:
    also [] (with a warning) when forbidden: an older ClusterRole without it must not stop egress."""
    resp = await api.request("GET", path, query=dict(query or {}), timeout=_TIMEOUT)
    async with resp:
        if resp.status == 404:
            return []
        if resp.status == 403 and optional:
            log.warning("egress: GET %s is forbidden (RBAC): going on without it (docs/egress.md)", path)
            return []
        if resp.status != 200:
            raise NetworkError(f"GET {path}: HTTP {resp.status}")
        doc = await resp.json()
    items = doc.get("items") if isinstance(doc, dict) else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


class PacketRuleDriver:
    """One agent's packet rules; `wanted` is pure, `apply` does the I/O (in a thread)."""

    def __init__(self, settings: PacketSettings, api: RestClient | None, me: str, ns: Netns = OWN) -> None:
        self.settings = settings
        self.api = api
        self.me = me
        self.table = PacketRuleTable(settings.table, ns)
        self.networks = ClusterNetworks(
            settings.pod_cidrs or (), settings.service_cidrs or ()
        )
        self._discovered_at = -DISCOVERY_PERIOD
        self._found = False
        self._lock = asyncio.Lock()  # the rules task and shutdown's removal take turns
        self._translated: dict[IPAddress, IPAddress] = {}  # pod -> VIP in the table now
        self.failed = False
        self._may_hold = True  # until removed at start-up: a previous run may have left a table

    @property
    def discovered(self) -> bool:
        """Whether the exemptions are known: both CIDR settings given, or discovery answered once."""
        s = self.settings
        return (s.pod_cidrs is not None and s.service_cidrs is not None) or self._found

    def wanted(
        self, services: Iterable[tuple[ServiceView, ServiceDecision]], held: frozenset[IPAddress]
    ) -> PacketRules:
        """The rules for this node. No SNAT before the exemptions are known: translating a pod's traffic
        to another pod or to the API server, even briefly, would break it."""
        rules = node_rules(services, held, self.me, self.networks, self.settings.service_security)
        return rules if self.discovered else PacketRules((), rules.guards)

    def needs_networks(self, services: Iterable[tuple[ServiceView, ServiceDecision]]) -> bool:
        """Whether some Service asks for egress (only then are the cluster's networks looked up)."""
        return any(egress_enabled(v) for v, _ in services)

    async def discover(self, force: bool = False) -> bool:
        """Refresh pod/Service CIDRs and API server addresses; True when they changed."""
        if self.api is None or (not force and time.monotonic() - self._discovered_at < DISCOVERY_PERIOD):
            return False
        self._discovered_at = time.monotonic()
        s = self.settings
        try:
            nodes = [] if s.pod_cidrs is not None else await _items(self.api, "/api/v1/nodes")
            cidrs = [] if s.service_cidrs is not None else await _items(
                self.api, "/apis/networking.k8s.io/v1/servicecidrs", optional=True)
            api_slices = await _items(
                self.api, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
                {"labelSelector": "kubernetes.io/service-name=kubernetes"}, optional=True,
            )
        except DISCOVERY_ERRORS as exc:
            log.warning("egress: cannot discover cluster networks (retrying): %s", exc)
            self._discovered_at = time.monotonic() - DISCOVERY_PERIOD + 5
            return False
        hosts = [urlsplit(self.api.server).hostname or "", os.environ.get("KUBERNETES_SERVICE_HOST", "")]
        found = discovered_networks(nodes, cidrs, api_slices, [h for h in hosts if h], s.pod_cidrs,
                                    s.service_cidrs)
        changed = found != self.networks or not self._found
        self._found = True
        if changed:
            log.info("egress: pod CIDRs %s, Service CIDRs %s, API servers %s",
                     [str(c) for c in found.pod_cidrs], [str(c) for c in found.service_cidrs],
                     [str(a) for a in found.api_servers])
        self.networks = found
        return changed

    async def apply(self, rules: PacketRules) -> bool:
        """Replace the table with `rules`; False (and logged) when nft refused or is missing. Without
        rules and without a table of ours nothing runs: a node without egress or security needs no nft."""
        async with self._lock:
            return await self._apply(rules)

    async def _apply(self, rules: PacketRules) -> bool:
        if rules.empty and not self._may_hold:
            return True
        try:
            changed = await asyncio.to_thread(self.table.apply, rules)
        except NetworkError as exc:
            log.error("packet rules not applied (retrying): %s", exc)
            self._may_hold = True
            self.failed = True
            return False
        self._may_hold = not rules.empty
        translated = {s: r.vip for r in reversed(rules.snat) for s in r.sources}
        moved = {s for s in translated.keys() | self._translated.keys()
                 if translated.get(s) != self._translated.get(s)}
        self._translated = translated
        if moved:
            # Flows of these pods keep the translation of their first packet: let them start over.
            try:
                await asyncio.to_thread(forget_flows, moved, self.table.ns)
            except NetworkError as exc:
                log.warning("egress: conntrack entries of %d pods not removed: %s", len(moved), exc)
        if changed:
            log.info("packet rules: %d egress SNAT rules, %d guarded VIPs", len(rules.snat),
                     len(rules.guards))
        self.failed = False
        return True

    async def heal(self, rules: PacketRules) -> bool:
        """Put the table back if someone removed it (`nft flush ruleset`, a firewall reload) while it
        should hold `rules`; True when it had to."""
        if rules.empty or not self._may_hold:
            return False
        async with self._lock:
            try:
                if await asyncio.to_thread(self.table.present):
                    return False
            except NetworkError as exc:
                log.warning("packet rules: cannot check the table: %s", exc)
                return False
            log.warning("packet rules: table inet %s is gone (removed by someone else): writing it again",
                        self.table.table)
            self.table.applied = None
            return await self._apply(rules)

    async def remove(self) -> None:
        """Start-up and shutdown: drop our table (nothing to do without nft: then we never made one)."""
        if not self.table.available():
            self._may_hold = False
            return
        async with self._lock:
            try:
                await asyncio.to_thread(self.table.remove)
                self._may_hold = False
            except NetworkError as exc:
                self._may_hold = True
                log.error("cannot remove packet-rule table: %s", exc)
                return
            moved, self._translated = set(self._translated), {}
            if moved:  # their flows would keep leaving with a VIP this node no longer answers for
                try:
                    await asyncio.to_thread(forget_flows, moved, self.table.ns)
                except NetworkError as exc:
                    log.warning("egress: conntrack entries of %d pods not removed: %s", len(moved), exc)
