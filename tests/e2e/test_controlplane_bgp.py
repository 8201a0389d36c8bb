"""The control-plane VIP over BGP end to end (issue 22): three kube-apiservers in node namespaces, a
`cp_enable` + `bgp_enable` agent next to each peering a real router (bird2, which programs the kernel),
kubectl in the bgp_client namespace behind the router through the VIP of each family.

ECMP mode (kube-vip's default): the router's RIB holds each VIP with exactly the healthy nodes as next
hops; a killed API server's node withdraws, a killed node (agent and API server) drops out, the client
still reaches the API server. Single-holder mode (vip_leaderelection=true): exactly one next hop per
family, the same node for both, the Lease holder; it moves when the holder's API server dies."""

from __future__ import annotations

import json
import secrets
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kubevip.ip import IPAddress
from kubevip.lab.bgp import LabBgp
from kubevip.lab.controlplane import ControlPlane
from kubevip.lab.cpvip import ControlPlaneVipLab, lab_status
from kubevip.lab.network import LabNetwork
from kubevip.lab.stack import connect_network
from tests.fixtures.prereqs import require, require_root_netns
from tests.fixtures.waiting import wait_until
from tests.net.test_bgp_speaker import _require_daemon

pytestmark = [pytest.mark.e2e, pytest.mark.bgp]

WITHIN = 90.0  # generous: the machine is shared; the hold time (9 s) bounds a silent node's withdrawal
DAEMON = "bird2"


def until(cond: Callable[[], Any], what: str, lab: ControlPlaneVipLab, within: float = WITHIN) -> Any:
    return wait_until(cond, what, within, interval=0.2, detail=lambda: f"RIB {lab.rib()}\n{lab.agent_logs()}")


@pytest.fixture(scope="module")
def cpb(
    control_plane: ControlPlane, lab_network: LabNetwork, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlaneVipLab]:
    require_root_netns()
    require(control_plane.bind_address.is_unspecified, "control plane bound for lab nodes (root)")
    _require_daemon(DAEMON)
    net = LabNetwork(f"b{secrets.token_hex(3)}", nodes=3, state_dir=tmp_path_factory.mktemp("cpbgp"))
    router = LabBgp(net, net.state_dir)
    try:
        net.up()
        connect_network(control_plane, net)
        router.up(DAEMON)
        lab = ControlPlaneVipLab(control_plane, net, 3, agent_extra_env={"bgp_hold_time": "9"})
        try:
            lab.start()
            yield lab
        finally:
            lab.stop()
    finally:
        router.down()
        net.down()
        connect_network(control_plane, lab_network)  # give the session's Nodes their addresses back


def hops(lab: ControlPlaneVipLab, *names: str) -> dict[int, frozenset[IPAddress]]:
    """The next hops the router should have for each family when `names` announce."""
    nodes = [lab.net.node(n) for n in names]
    return {4: frozenset(n.ipv4 for n in nodes), 6: frozenset(n.ipv6 for n in nodes)}


def rib_is(lab: ControlPlaneVipLab, *names: str) -> bool:
    return lab.rib() == hops(lab, *names)


def api_ok(lab: ControlPlaneVipLab, family: int) -> bool:
    res = lab.kubectl(family, "get", "--raw", "/livez", timeout=3)
    return res.returncode == 0 and res.stdout.strip() == "ok"


def both_reach(lab: ControlPlaneVipLab) -> bool:
    return api_ok(lab, 4) and api_ok(lab, 6)


def on_lo(lab: ControlPlaneVipLab, name: str) -> set[IPAddress]:
    node = lab.net.node(name)
    res = lab.net.run(node.netns, ["ip", "-j", "addr", "show", "dev", "lo"], check=False)
    import ipaddress

    addrs = {ipaddress.ip_address(a["local"]) for link in json.loads(res.stdout or "[]")
             for a in link.get("addr_info", [])}
    return addrs & {lab.vip4, lab.vip6}


def single_holder(lab: ControlPlaneVipLab) -> str | None:
    """The node whose addresses are the only next hops of both families, else None."""
    rib = lab.rib()
    for n in lab.nodes:
        if rib == hops(lab, n.name):
            return n.name
    return None


def lease_holder(lab: ControlPlaneVipLab) -> str | None:
    out = lab.cp.kubectl_run("get", "lease", "-n", "kube-system", "plndr-cp-lock", "-o", "json")
    holder: str | None = json.loads(out)["spec"].get("holderIdentity") or None
    return holder


def test_ecmp_every_healthy_node_withdraws_on_api_server_and_node_failure(cpb: ControlPlaneVipLab) -> None:
    all3 = ("node1", "node2", "node3")
    until(lambda: rib_is(cpb, *all3), "RIB: both VIPs via all three nodes", cpb)
    until(lambda: both_reach(cpb), "bgp_client reaches the API server through both VIPs", cpb)
    assert all(on_lo(cpb, n) == {cpb.vip4, cpb.vip6} for n in all3)
    doc = lab_status(cpb.net, cpb.cp)  # `lab status -o json`'s control_plane: added keys, old ones kept
    assert doc is not None and doc["vip"] == {"ipv4": str(cpb.vip4), "ipv6": str(cpb.vip6)}
    assert (doc["announce"], doc["bgp_mode"]) == ("bgp", "ecmp")
    assert doc["client_netns"] == cpb.bgp.client_netns

    # The API server of node2 dies: node2 withdraws (and takes the addresses down); the others serve.
    cpb.kill_apiserver("node2")
    until(lambda: rib_is(cpb, "node1", "node3"), "RIB without node2 after its API server died", cpb)
    until(lambda: not on_lo(cpb, "node2"), "node2 removed the VIPs", cpb)
    until(lambda: both_reach(cpb), "bgp_client still reaches the API server", cpb)
    cpb.start_apiserver("node2")
    until(lambda: rib_is(cpb, *all3), "node2 announces again once its API server is back", cpb)

    # node3 dies as a whole (agent and API server, no goodbye): its session ends, the route goes.
    agent = cpb.agents["node3"]
    agent.signal(signal.SIGKILL)
    cpb.kill_apiserver("node3")
    until(lambda: rib_is(cpb, "node1", "node2"), "RIB without node3 after it died", cpb)
    until(lambda: both_reach(cpb), "bgp_client still reaches the API server", cpb)
    agent.stop()  # node3 stays down: the next test runs on two healthy nodes (CI seconds)


def test_single_holder_has_one_next_hop_that_moves_on_failure(cpb: ControlPlaneVipLab) -> None:
    graceful = [n for n, a in cpb.agents.items() if a.running]  # node3's was SIGKILLed: leftovers stay
    for a in cpb.agents.values():
        a.signal(signal.SIGTERM)
    for a in cpb.agents.values():
        a.stop()
    until(lambda: cpb.rib() == {4: frozenset(), 6: frozenset()}, "SIGTERM of every agent empties the RIB",
          cpb)
    assert graceful and not any(on_lo(cpb, n) for n in graceful)
    cpb.agents.clear()
    cpb.bgp_mode = "single"
    for n in cpb.nodes:  # node3's API server is still down (previous test): its agent only waits
        cpb.start_agent(n.name)
    first = until(lambda: single_holder(cpb), "RIB: both VIPs via exactly one node", cpb)
    assert lease_holder(cpb) == first
    assert (lab_status(cpb.net, cpb.cp) or {}).get("bgp_mode") == "single"
    until(lambda: both_reach(cpb), "bgp_client reaches the API server through both VIPs", cpb)
    # node3's restarted agent removed its predecessor's leftovers: only the holder has the addresses.
    until(lambda: [n.name for n in cpb.nodes if on_lo(cpb, n.name)] == [first],
          "addresses on the holder only", cpb)

    cpb.kill_apiserver(first)
    second = until(lambda: (h := single_holder(cpb)) not in (None, first) and h,
                   f"the one next hop moves away from {first}", cpb)
    until(lambda: both_reach(cpb), "bgp_client reaches the API server through the new holder", cpb)
    until(lambda: lease_holder(cpb) == second, "the Lease follows", cpb)
