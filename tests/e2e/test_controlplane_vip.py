"""Control-plane VIP end to end: three kube-apiservers in node namespaces (one etcd), a `cp_enable` agent
next to each, kubectl in the client namespace through the VIP on both families (TLS verified against the
lab CA). Failovers: SIGTERM of the holder's agent, SIGKILL of its agent, SIGKILL of its API server; a
watcher checks all along that both families sit on one node and never on two.

On the IPv4-only and IPv6-only lab networks (`stack_labs`, sharing the session control plane) the VIP is
one address of that family: held by one node, the API answering through it, moving on SIGTERM and on
SIGKILL of its holder's agent, and no address of the other family ever on a node."""

from __future__ import annotations

import ipaddress
import json
import secrets
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kubevip.controlplane.kernel import CONTROL_PLANE_PROTO
from kubevip.lab import pods
from kubevip.lab.bgp import LabBgp
from kubevip.lab.client import connect
from kubevip.lab.controlplane import ControlPlane
from kubevip.lab.cpvip import AGENT_METRICS, ControlPlaneVipLab, lab_status
from kubevip.lab.network import LabNetwork
from kubevip.lab.stack import connect_network, run_sync
from kubevip.lab.topology import cp_session_address
from kubevip.net.addresses import AddressManager
from kubevip.net.namespace import Netns
from tests.e2e.conftest import StackLabs
from tests.fixtures.prereqs import require, require_root_netns
from tests.fixtures.waiting import wait_until
from tests.net.test_bgp_speaker import _require_daemon

WITHIN = 90.0  # generous: the machine may be shared with other heavy test runs
SVC_NS = "cpvip-services"
# Every agent runs Services too (svc_enable + cp_enable in one process, separate Leases).
SERVICES_ENV = {"svc_enable": "true", "svc_namespace": SVC_NS, "vip_electionmode": "lease"}


def until(cond: Callable[[], Any], what: str, lab: ControlPlaneVipLab, within: float = WITHIN) -> Any:
    return wait_until(cond, what, within, interval=0.1, detail=lambda: lab.agent_logs())


@pytest.fixture(scope="module")
def cpv(
    control_plane: ControlPlane, lab_network: LabNetwork, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlaneVipLab]:
    require_root_netns()
    require(control_plane.bind_address.is_unspecified, "control plane bound for lab nodes (root)")
    net = LabNetwork(f"c{secrets.token_hex(3)}", nodes=3, state_dir=tmp_path_factory.mktemp("cpvip"))
    try:
        net.up()
        connect_network(control_plane, net)
        control_plane.kubectl_run("create", "namespace", SVC_NS)
        lab = ControlPlaneVipLab(control_plane, net, 3, agent_extra_env=dict(SERVICES_ENV))
        try:
            lab.start()
            yield lab
        finally:
            lab.stop()
    finally:
        net.down()
        control_plane.kubectl_run("delete", "namespace", SVC_NS, "--wait=false")
        # This lab registered the session's Nodes with its own addresses: give them back to the session
        # lab, or tests that run after this module see Nodes pointing at a lab that is gone.
        connect_network(control_plane, lab_network)


def sole_holder(lab: ControlPlaneVipLab, exclude: frozenset[str] = frozenset()) -> str | None:
    """The one node holding the VIP of every family of the lab (ignoring `exclude`), else None."""
    h = lab.holders()
    both = set.intersection(*(h[f] for f in lab.families)) - exclude
    others = (h[4] | h[6]) - exclude - both
    return next(iter(both)) if len(both) == 1 and not others else None


def api_ok(lab: ControlPlaneVipLab, family: int) -> bool:
    res = lab.kubectl(family, "get", "--raw", "/livez", timeout=3)
    return res.returncode == 0 and res.stdout.strip() == "ok"


def lease_holder(lab: ControlPlaneVipLab) -> str | None:
    name = lab.agent_extra_env.get("vip_leasename", "plndr-cp-lock")
    out = lab.cp.kubectl_run("get", "lease", "-n", "kube-system", name, "-o", "json")
    holder: str | None = json.loads(out)["spec"].get("holderIdentity") or None
    return holder


class Watcher:
    """Polls VIP placement in a thread; a violation must show in two consecutive snapshots read in
    opposite node orders (one sequential read can straddle a clean hand-over, two reversed ones cannot)."""

    def __init__(self, lab: ControlPlaneVipLab) -> None:
        self.lab = lab
        self.exclude: frozenset[str] = frozenset()  # nodes whose agent is dead (stale addresses expected)
        self.violations: list[str] = []
        self.snapshots = 0
        # A single-stack lab: the family it lacks must never show on a node (no address, no link-local).
        self.other = next((f for f in (4, 6) if f not in lab.families), None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cp-vip-watcher", daemon=True)

    def _snapshot(self, reverse: bool) -> set[str]:
        nodes = list(self.lab.net.nodes)
        if reverse:
            nodes.reverse()
        holding: set[str] = set()
        for n in nodes:
            res = self.lab.net.run(n.netns, ["ip", "-j", "addr", "show", "dev", n.interface], check=False)
            addrs = {a["local"] for link in json.loads(res.stdout or "[]") for a in link.get("addr_info", [])}
            if addrs & {str(v) for v in self.lab.vips.values()} and n.name not in self.exclude:
                holding.add(n.name)
            if self.other is not None:
                self.violations += [f"IPv{self.other} address {a} on {n.name} of a {self.lab.net.stack} lab"
                                    for a in other_family(self.lab, n.netns, self.other)]
        return holding

    def _run(self) -> None:
        prev: set[str] = set()
        reverse = False
        while not self._stop.is_set():
            cur = self._snapshot(reverse)
            self.snapshots += 1
            if len(cur) > 1 and len(prev) > 1:
                self.violations.append(f"control-plane VIPs on several nodes: {sorted(cur)}")
            prev, reverse = cur, not reverse

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)
        assert self.snapshots > 0
        assert not self.violations, self.violations


def other_family(lab: ControlPlaneVipLab, netns: str, family: int) -> list[str]:
    """Addresses of `family` in `netns` on any interface, loopback addresses aside: 127.0.0.1, and the
    agent's start-up probe of IFA_PROTO support (net.addresses.PROBE_ADDRESS, in 127.0.0.0/8 on lo for
    at most 1 s: local already, it reaches nothing; a CI rehearsal caught it on an IPv6-only node)."""
    res = lab.net.run(netns, ["ip", "-j", f"-{family}", "addr", "show"], check=False)
    return [a["local"] for link in json.loads(res.stdout or "[]") for a in link.get("addr_info", [])
            if not ipaddress.ip_address(a["local"]).is_loopback]


def moved_from(lab: ControlPlaneVipLab, old: str, exclude: frozenset[str] = frozenset()) -> str | None:
    h = sole_holder(lab, exclude)
    return h if h not in (None, old) else None


def steady(lab: ControlPlaneVipLab) -> str:
    """Every agent and API server up, one holder of both VIPs, API answering on both families."""
    for n in lab.nodes:
        lab.start_apiserver(n.name)
        lab.start_agent(n.name)
    holder: str = until(lambda: sole_holder(lab), "one node holding the control-plane VIPs", lab)
    until(lambda: all(api_ok(lab, f) for f in lab.families), "kubectl through the VIPs", lab)
    return holder


def service_vip_holders(lab: ControlPlaneVipLab) -> dict[str, set[str]]:
    """Node -> Service VIPs it announces (IFA_PROTO 248, the Service agent's mark)."""
    out = {}
    for n in lab.net.nodes:
        out[n.name] = {str(a) for a, _ in AddressManager(n.interface, Netns(n.netns)).owned()}
    return out


def test_kubectl_through_the_vip_on_both_families(cpv: ControlPlaneVipLab) -> None:
    steady(cpv)
    for family in (4, 6):
        res = cpv.kubectl(family, "get", "namespace", "kube-system", "-o", "name")
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == "namespace/kube-system"
    # The Lease names the node with the VIPs (under load a hand-over may have happened meanwhile).
    until(lambda: lease_holder(cpv) == sole_holder(cpv) is not None, "the Lease holder holding the VIPs", cpv)
    doc = lab_status(cpv.net, cpv.cp)
    assert doc is not None
    assert doc["vip"] == {"ipv4": str(cpv.vip4), "ipv6": str(cpv.vip6)}
    assert doc["kubeconfig_ipv4"] == str(cpv.kubeconfig(4))
    assert doc["kubeconfig_ipv6"] == str(cpv.kubeconfig(6))


def test_sigterm_releases_the_lease_at_once(cpv: ControlPlaneVipLab) -> None:
    holder = steady(cpv)
    with Watcher(cpv):
        agent = cpv.agents[holder]
        agent.signal(signal.SIGTERM)
        assert agent.proc is not None and agent.proc.wait(60) == 0
        # Released before the process exited: the Lease no longer names it (empty, or a peer already).
        assert lease_holder(cpv) != holder
        assert holder not in (cpv.holders()[4] | cpv.holders()[6])
        new = until(lambda: moved_from(cpv, holder), "a peer holding both VIPs", cpv)
        until(lambda: api_ok(cpv, 4) and api_ok(cpv, 6), "kubectl through both VIPs after SIGTERM", cpv)
        cpv.start_agent(holder)  # back: campaigns, but the new holder keeps the VIPs
        until(lambda: lease_holder(cpv) == new and sole_holder(cpv) == new, "the new holder kept", cpv)


def test_sigkill_of_the_holders_agent_moves_the_vip(cpv: ControlPlaneVipLab) -> None:
    holder = steady(cpv)
    with Watcher(cpv) as w:
        w.exclude = frozenset({holder})  # a killed agent cannot remove its addresses: kubelet restarts it
        cpv.agents[holder].kill()
        new = until(lambda: moved_from(cpv, holder, frozenset({holder})), "a peer holding both VIPs", cpv)
        until(lambda: api_ok(cpv, 4) and api_ok(cpv, 6), "kubectl through both VIPs after SIGKILL", cpv)
        cpv.start_agent(holder)  # as kubelet would: the new process removes what the old one left
        until(lambda: sole_holder(cpv) == new, "the restarted agent cleaned up its stale VIPs", cpv)
        w.exclude = frozenset()
        until(lambda: api_ok(cpv, 4) and api_ok(cpv, 6), "kubectl through both VIPs after the restart", cpv)


def test_sigkill_of_the_holders_apiserver_moves_the_vip(cpv: ControlPlaneVipLab) -> None:
    holder = steady(cpv)
    with Watcher(cpv):
        cpv.kill_apiserver(holder)
        new = until(lambda: moved_from(cpv, holder), "a healthy node holding both VIPs", cpv)
        until(lambda: api_ok(cpv, 4) and api_ok(cpv, 6), "kubectl through both VIPs after the kill", cpv)
        cpv.start_apiserver(holder)
        assert sole_holder(cpv) == new


def metric(lab: ControlPlaneVipLab, node: str, name: str) -> float:
    """A counter of the agent on `node` (summed over labels matching `name`), from its metrics port."""
    fetch = "import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=3).read().decode())"
    res = lab.net.run(lab.net.node(node).netns, [sys.executable, "-c", fetch,
                                                 f"http://127.0.0.1{AGENT_METRICS}/metrics"], check=False)
    return sum(float(line.rsplit(" ", 1)[1]) for line in res.stdout.splitlines() if line.startswith(name))


def vip_connections(lab: ControlPlaneVipLab, node: str) -> list[str]:
    """TCP connections on `node` whose local address is a control-plane VIP."""
    out = []
    for vip in (lab.vip4, lab.vip6):
        res = lab.net.run(lab.net.node(node).netns, ["ss", "-Htn", "src", str(vip)], check=False)
        out += [line for line in res.stdout.splitlines() if line.strip()]
    return out


def test_a_holder_stalled_past_its_lease_keeps_its_services_part_working(cpv: ControlPlaneVipLab) -> None:
    """The holder's agent stalls (SIGSTOP: a CPU-starved process) until a peer holds the Lease, then runs
    on: it fences and withdraws while its API server keeps serving. Its Service part reached the API
    through the VIP, locally; those connections must fail at once (and be re-made), not hang."""
    holder = steady(cpv)
    agent = cpv.agents[holder]
    assert agent.proc is not None
    events = "kube_vip_manager_all_services_events_total{"
    until(lambda: vip_connections(cpv, holder), "the holder's agent using the VIP locally", cpv)
    agent.signal(signal.SIGSTOP)
    try:
        until(lambda: lease_holder(cpv) not in (None, holder), "a peer holding the Lease", cpv)
    finally:
        agent.signal(signal.SIGCONT)
    new = until(lambda: moved_from(cpv, holder), "a peer holding both VIPs, the stalled node none", cpv)
    until(lambda: not vip_connections(cpv, holder), "no connection left on the VIP the node gave up", cpv)
    before = metric(cpv, holder, events)
    cpv.cp.kubectl_run("create", "service", "clusterip", "after-stall", "-n", SVC_NS, "--tcp=80:80")
    pokes = iter(range(1, 10_000))

    def watch_alive() -> bool:
        # A change the node's Service watch must report as an event (a relist would swallow the ADDED).
        cpv.cp.kubectl_run("annotate", "--overwrite", "service", "after-stall", "-n", SVC_NS,
                           f"kvt.example/poke={next(pokes)}")
        return metric(cpv, holder, events) > before

    try:
        until(watch_alive, "the stalled node's Service watch reporting changes", cpv)
    finally:
        cpv.cp.kubectl_run("delete", "service", "after-stall", "-n", SVC_NS)
    until(lambda: api_ok(cpv, 4) and api_ok(cpv, 6), "kubectl through both VIPs after the stall", cpv)
    assert sole_holder(cpv) == new


# After the failover tests on purpose (it passes in any order): a node that lost the control-plane VIP
# while its API server kept serving used to keep its Service watches on connections from the VIP to the
# VIP, dead once a peer held it; when that node led the Services, nothing was announced for minutes.
def test_services_and_control_plane_in_one_process(cpv: ControlPlaneVipLab) -> None:
    holder = steady(cpv)
    v4, v6 = cpv.net.vip(4, 0), cpv.net.vip(6, 0)
    cpv.cp.kubectl_run(
        "apply",
        "-n",
        SVC_NS,
        "-f",
        "-",
        stdin=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web", "annotations": {"kube-vip.io/loadbalancerIPs": f"{v4},{v6}"}},
                "spec": {
                    "type": "LoadBalancer",
                    "ipFamilies": ["IPv4", "IPv6"],
                    "ipFamilyPolicy": "RequireDualStack",
                    "selector": {"app": "web"},
                    "allocateLoadBalancerNodePorts": False,
                    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                },
            }
        ),
    )

    async def pod() -> None:
        async with connect(cpv.cp.admin_kubeconfig) as api:
            ips = [ipaddress.ip_address("10.244.9.10"), ipaddress.ip_address("fd00:10:244:9::10")]
            await pods.create_pod(
                api, SVC_NS, "web-1", cpv.nodes[1].name, {"app": "web"}, ips, ports=(("http", 8080, "TCP"),)
            )

    run_sync(pod)

    def announced() -> str | None:
        h = service_vip_holders(cpv)
        nodes = [n for n, vips in h.items() if {str(v4), str(v6)} <= vips]
        return nodes[0] if len(nodes) == 1 else None

    until(announced, "the Service's VIPs announced by the Service part of one agent", cpv)
    out = json.loads(cpv.cp.kubectl_run("get", "lease", "-n", "kube-system", "-o", "json"))
    holders = {i["metadata"]["name"]: i["spec"].get("holderIdentity") for i in out["items"]}
    assert holders.get("plndr-cp-lock") == holder
    assert holders.get("plndr-svcs-lock") in {n.name for n in cpv.nodes}
    # The Service agent leaves the control-plane VIPs (IFA_PROTO 249) alone, and vice versa.
    assert sole_holder(cpv) == holder
    assert all(str(cpv.vip4) not in vips for vips in service_vip_holders(cpv).values())
    assert api_ok(cpv, 4) and api_ok(cpv, 6)


# One failover per stack (CI budget): graceful on ipv4, SIGKILL on ipv6; both kinds run on `dual` above.
@pytest.mark.parametrize(("stack", "failover"), [("ipv4", "sigterm"), ("ipv6", "sigkill")])
def test_single_stack_control_plane_vip(
    stack: str, failover: str, stack_labs: StackLabs, control_plane: ControlPlane, lab_network: LabNetwork,
) -> None:
    """The VIP of an IPv4-only (IPv6-only) lab is one IPv4 (IPv6) address: one holder, kubectl through it
    over that family, moved on SIGTERM (SIGKILL) of its holder's agent; never an address of the other
    family on a node, and `lab status` keeps its shape with that family's fields null."""
    require_root_netns()
    require(control_plane.bind_address.is_unspecified, "control plane bound for lab nodes (root)")
    fam = 4 if stack == "ipv4" else 6
    net = stack_labs.get(stack)
    connect_network(control_plane, net)  # a dual-stack cpvip lab may have run since it was made
    # Two nodes are enough for a failover, and start faster than three.
    # A Lease of its own: the module's dual-stack lab (`cpv`) may hold plndr-cp-lock of the same cluster.
    lab = ControlPlaneVipLab(control_plane, net, 2, agent_extra_env={"vip_leasename": f"kvt-cp-{stack}"})
    try:
        with Watcher(lab) as w:
            lab.start()
            assert lab.families == (fam,) and set(lab.vips) == {fam}
            holder = steady(lab)
            res = lab.kubectl(fam, "get", "namespace", "kube-system", "-o", "name")
            assert res.returncode == 0 and res.stdout.strip() == "namespace/kube-system", res.stderr
            doc = lab_status(net, control_plane)
            assert doc is not None and doc["stack"] == stack
            other = "ipv6" if fam == 4 else "ipv4"
            assert doc["vip"] == {f"ipv{fam}": str(lab.vips[fam]), other: None}
            assert doc[f"kubeconfig_ipv{fam}"] == str(lab.kubeconfig(fam))
            assert doc[f"kubeconfig_{other}"] is None
            if failover == "sigterm":  # graceful: the Lease released at once, the peer takes the VIP
                agent = lab.agents[holder]
                agent.signal(signal.SIGTERM)
                assert agent.proc is not None and agent.proc.wait(60) == 0
                new = until(lambda: moved_from(lab, holder), "the peer holding the VIP after SIGTERM", lab)
                until(lambda: api_ok(lab, fam), "kubectl through the VIP after SIGTERM", lab)
                lab.start_agent(holder)
                until(lambda: lease_holder(lab) == new and sole_holder(lab) == new, "new holder kept", lab)
            else:  # SIGKILL: its stale VIP stays until the agent restarts (as kubelet would restart it)
                dead = frozenset({holder})
                w.exclude = dead
                lab.agents[holder].kill()
                new = until(lambda: moved_from(lab, holder, dead), "the peer holding it after SIGKILL", lab)
                until(lambda: api_ok(lab, fam), "kubectl through the VIP after SIGKILL", lab)
                lab.start_agent(holder)
                until(lambda: sole_holder(lab) == new, "the restarted agent cleaned up its stale VIP", lab)
                w.exclude = frozenset()
        # The agents looked the missing family's interface up once each, not on every converge.
        for n in lab.nodes:
            log = lab.log_path(f"agent-{n.name}").read_text()
            assert log.count("control-plane VIPs are not announced") <= 2, log[-2000:]
    finally:
        lab.stop()
        for n in lab.nodes:  # the next user of this lab network starts clean
            AddressManager(n.interface, Netns(n.netns), proto=CONTROL_PLANE_PROTO).cleanup_stale([])
        connect_network(control_plane, lab_network)


@pytest.mark.bgp
@pytest.mark.parametrize("stack", ["ipv6"])  # IPv6-only: the harder case (32-bit id, session over IPv6)
def test_single_stack_control_plane_vip_over_bgp(
    stack: str, stack_labs: StackLabs, control_plane: ControlPlane, lab_network: LabNetwork,
) -> None:
    """`lab up --stack ipv4|ipv6 --bgp bird2 --control-plane N --control-plane-bgp single`: each control-plane
    agent peers the router from the node's second address of the lab family (the Service agent has the
    first), with a 32-bit router id even on an IPv6-only node; the router has the one VIP with the Lease
    holder as its one next hop, the bgp_client reaches the API server through it, and the route moves when
    the holder's agent stops (SIGTERM). No address of the other family on any node."""
    require_root_netns()
    require(control_plane.bind_address.is_unspecified, "control plane bound for lab nodes (root)")
    _require_daemon("bird2")
    fam = 4 if stack == "ipv4" else 6
    net = stack_labs.get(stack)
    connect_network(control_plane, net)
    router = LabBgp(net, net.state_dir)
    lab = ControlPlaneVipLab(control_plane, net, 2, bgp_mode="single",
                             agent_extra_env={"bgp_hold_time": "9", "vip_leasename": f"kvt-cpb-{stack}"})
    session = {n.name: cp_session_address(net.topo, i) for i, n in enumerate(net.nodes[:2])}
    try:
        router.up("bird2")
        lab.start()
        assert lab.status()["announce"] == "bgp" and lab.status()["vip"][f"ipv{6 if fam == 4 else 4}"] is None
        lab.wait_bgp_reachable()  # the router's RIB has the VIP, the bgp_client reaches the API through it

        def next_hop() -> str | None:
            hops = lab.rib()
            if set(hops) != {fam} or len(hops[fam]) != 1:
                return None
            by_addr = {a: name for name, a in session.items()}
            return by_addr.get(next(iter(hops[fam])))

        def holder_is_hop() -> str | None:
            h = next_hop()
            return h if h is not None and h == lease_holder(lab) else None

        holder: str = until(holder_is_hop,
                            "the Lease holder's session address the VIP's one next hop", lab)
        agent = lab.agents[holder]
        agent.signal(signal.SIGTERM)
        assert agent.proc is not None and agent.proc.wait(60) == 0
        new = until(lambda: (h := next_hop()) not in (None, holder) and h, "the route moved to the peer", lab)
        until(lambda: api_ok(lab, fam), "the bgp_client reaching the API server after the move", lab)
        assert lease_holder(lab) == new
        other = 6 if fam == 4 else 4
        for n in net.nodes:
            assert not other_family(lab, n.netns, other), f"IPv{other} on {n.name} of a {stack} lab"
    finally:
        lab.stop()
        router.down()
        connect_network(control_plane, lab_network)
