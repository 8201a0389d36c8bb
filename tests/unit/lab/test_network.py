"""`lab status -o json`'s network keys: the same shape on every stack, null where a family is missing."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from kubevip.errors import LabError
from kubevip.lab import topology
from kubevip.lab.agents import demo_service
from kubevip.lab.network import LabNetwork, network_json

FAMILY_KEYS = ("subnets", "vip_pool", "uplink", "client")


@pytest.mark.parametrize(("stack", "present", "absent"), [("ipv4", "ipv4", "ipv6"), ("ipv6", "ipv6", "ipv4")])
def test_single_stack_keeps_the_shape_with_nulls(stack: str, present: str, absent: str) -> None:
    single, dual = network_json(topology.plan("x", 5, 2, stack)), network_json(topology.plan("x", 5, 2))
    assert single["stack"] == stack and dual["stack"] == "dual"
    assert single.keys() == dual.keys()
    for key in FAMILY_KEYS:
        assert single[key].keys() == dual[key].keys()
        assert single[key][absent] is None
        assert single[key][present] == dual[key][present] is not None
    for node, dual_node in zip(single["nodes"], dual["nodes"], strict=True):
        assert node.keys() == dual_node.keys()
        assert node[absent] is None and node[present] == dual_node[present] is not None


def test_dual_stack_has_no_nulls() -> None:
    doc = network_json(topology.plan("x", 5, 1))
    assert all(v is not None for key in FAMILY_KEYS for v in doc[key].values())
    assert all(v is not None for n in doc["nodes"] for v in n.values())


def _lab(tmp_path: Path, stack: str) -> LabNetwork:
    net = LabNetwork("x", nodes=2, state_dir=tmp_path, stack=stack)
    net.topology = topology.plan("x", 5, 2, stack)  # the plan only: nothing is created
    return net


@pytest.mark.parametrize(("stack", "families"), [("dual", ["IPv4", "IPv6"]), ("ipv4", ["IPv4"]),
                                                 ("ipv6", ["IPv6"])])
def test_demo_service_asks_for_the_labs_families(tmp_path: Path, stack: str, families: list[str]) -> None:
    net = _lab(tmp_path, stack)
    spec = demo_service(net)["spec"]
    annotations = demo_service(net)["metadata"]["annotations"]  # type: ignore[index]
    assert isinstance(spec, dict)
    assert spec["ipFamilies"] == families
    assert spec["ipFamilyPolicy"] == ("PreferDualStack" if stack == "dual" else "SingleStack")
    vips = [ipaddress.ip_address(a) for a in annotations["kube-vip.io/loadbalancerIPs"].split(",")]
    assert [f"IPv{a.version}" for a in vips] == families
    assert list(net.vip_pool) == [a.version for a in vips]


def test_a_missing_family_has_no_vip(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="ipv6: it has no IPv4"):
        _lab(tmp_path, "ipv6").vip(4)


