"""`kubevip explain` shows what the holder's DHCP client asks (docs/explain.md, docs/dhcp.md), and nothing
new for a Service that does not ask `0.0.0.0`."""

from __future__ import annotations

from kubevip.core.dhcp import derive_mac, macvlan_name
from kubevip.core.parse import service_from_dict
from kubevip.core.plan import decide
from kubevip.explain import to_json
from tests.unit.core import builders as b


def test_dhcp_key_only_for_a_dhcp_service() -> None:
    s = service_from_dict(b.service(lb_ip="0.0.0.0", annotations={
        "kube-vip.io/requestedIP": "10.0.0.9", "kube-vip.io/loadbalancerHostname": "web"}))
    doc = to_json(decide(s, (), None, False), s)
    assert doc["dhcp"] == [{"family": "IPv4", "mac": derive_mac("default/web"),
                            "interface": macvlan_name("default/web"), "requested": "10.0.0.9",
                            "hostname": "web"}]
    assert doc["vips"] == [] and doc["announce"] is True
    plain = service_from_dict(b.service(lb_ip="10.0.0.5"))
    assert "dhcp" not in to_json(decide(plain, (), None, False), plain)
