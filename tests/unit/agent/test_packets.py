"""The agent's packet-rule driver without a kernel: no nft run when nothing is wanted, no SNAT before the
exemptions are known."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from kubevip.agent.packets import PacketRuleDriver
from kubevip.core.egress import PacketRules
from kubevip.core.parse import endpointslice_from_dict, service_from_dict
from kubevip.core.plan import ServiceDecision, decide
from kubevip.core.views import ServiceView
from kubevip.net.nftables import PacketRuleTable
from kubevip.net.settings import PacketSettings
from tests.unit.core import builders as b

VIP = ipaddress.ip_address("198.18.1.200")


def pairs(annotations: dict[str, str]) -> list[tuple[ServiceView, ServiceDecision]]:
    view = service_from_dict(b.service(families=["IPv4"], lb_ips=str(VIP),
                                       annotations={"kube-vip.io/egress": "true", **annotations}))
    sl = [endpointslice_from_dict(b.endpointslice("web-4", "IPv4", [b.ep("10.244.1.2", "n1")]))]
    return [(view, decide(view, sl, None, False))]


def test_no_snat_until_the_exemptions_are_known() -> None:
    d = PacketRuleDriver(PacketSettings(service_security=True), None, "n1")
    assert not d.discovered
    rules = d.wanted(pairs({}), frozenset({VIP}))
    assert rules.snat == () and [g.vip for g in rules.guards] == [VIP]
    cidrs = (ipaddress.ip_network("10.0.0.0/8"),)
    d = PacketRuleDriver(PacketSettings(pod_cidrs=cidrs, service_cidrs=cidrs), None, "n1")
    assert d.discovered
    assert [r.vip for r in d.wanted(pairs({}), frozenset({VIP})).snat] == [VIP]


async def test_nothing_wanted_and_nothing_held_runs_no_nft(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    fake = tmp_path / "nft"
    fake.write_text(f"#!/bin/sh\ntouch {marker}\n")
    fake.chmod(0o755)
    d = PacketRuleDriver(PacketSettings(), None, "n1")
    d.table = PacketRuleTable(nft=str(fake))
    await d.remove()  # start-up: removes a previous run's table
    assert marker.exists()
    marker.unlink()
    assert await d.apply(PacketRules())
    assert not marker.exists()
