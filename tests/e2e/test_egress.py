"""Egress SNAT and Service security end to end, with real pod namespaces (`kubevip lab pod add`).

A pod's UDP datagram to the client arrives from the VIP of its family when the Service serves that family
and the pod's node holds the VIP; the other family leaves with the pod's own address; traffic to another
pod (pod CIDR, exempt) too. Failover moves the rules with the VIP; Service deletion and an agent restart
leave no rule behind. Service security refuses a host port on the VIP and allows the Service's port.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import secrets
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import pytest

from kubevip.lab import podnet
from kubevip.lab.tcpprobe import probe_argv
from kubevip.lab.udpprobe import Sink, send_argv
from kubevip.net.addresses import AddressManager
from kubevip.net.namespace import Netns
from kubevip.net.nftables import PacketRuleTable
from tests.e2e.conftest import E2E
from tests.fixtures.prereqs import require_binary

pytestmark = pytest.mark.e2e
T = TypeVar("T")
_PORTS = itertools.count(9100)
EGRESS = {"kube-vip.io/egress": "true"}


class Pods:
    """Lab pods of one test, removed at the end (their Pod objects go with the test's namespace)."""

    def __init__(self, e2e: E2E) -> None:
        self.e2e = e2e
        self.made: list[podnet.LabPod] = []

    async def add(self, app: str, node: str) -> podnet.LabPod:
        name = f"{app}-{secrets.token_hex(2)}"
        e = self.e2e
        p = await asyncio.to_thread(podnet.add, e.cp, e.lab, name, node, e.ns, {"app": app})
        self.made.append(p)
        return p

    def close(self) -> None:
        for p in self.made:
            podnet.delete(None, self.e2e.lab, p.name, p.namespace)


@pytest.fixture
async def lab_pods(e2e: E2E) -> AsyncIterator[Pods]:
    require_binary("nft")
    pods = Pods(e2e)
    try:
        yield pods
    finally:
        await asyncio.to_thread(pods.close)


async def source(e2e: E2E, pod: podnet.LabPod, sink: Sink, target: str, within: float = 30.0) -> str:
    """Send datagrams from `pod` to `target` until the sink reports one; its source address."""
    tag = f"{pod.name}-{secrets.token_hex(3)}"

    async def probe() -> str | None:
        await e2e.lab.run_async(pod.netns, send_argv(target, sink.port, tag))
        return await asyncio.to_thread(sink.source, tag, 0.5)

    return await e2e.eventually(probe, f"a datagram from {pod.name} at {target}", within)


async def source_is(e2e: E2E, pod: podnet.LabPod, sink: Sink, target: str, want: str) -> bool:
    return await source(e2e, pod, sink, target) == want


def table(e2e: E2E, node: str) -> str:
    return PacketRuleTable(ns=Netns(e2e.lab.node(node).netns)).listing()


async def annotation(e2e: E2E, name: str, key: str) -> str | None:
    svc = await e2e.core.read_namespaced_service(name, e2e.ns)
    return (svc.metadata.annotations or {}).get(key)


async def _is(value: Awaitable[T], expected: T) -> bool:
    return await value == expected


CASES = {
    "ipv4": (("IPv4",), "SingleStack", (4,)),
    "ipv6": (("IPv6",), "SingleStack", (6,)),
    "dual": (("IPv6", "IPv4"), "RequireDualStack", (4, 6)),
    "seed": (("IPv4",), "SingleStack", (4,)),  # IPv4-only Service, dual-stack pods, VIPs of both listed
}


@pytest.mark.parametrize("case", list(CASES))
async def test_pod_traffic_leaves_with_the_vip_of_each_served_family_only(
    e2e: E2E, lab_pods: Pods, case: str
) -> None:
    families, policy, served = CASES[case]
    app = f"eg{case}"
    pod = await lab_pods.add(app, "node2")
    peer = await lab_pods.add("peer", "node1")  # another pod: pod CIDRs are exempt
    vips = {4: e2e.vip(4), 6: e2e.vip(6)}
    listed = [vips[4], vips[6]] if case == "seed" else [vips[f] for f in served]
    await e2e.service(app, listed, families=families, policy=policy, annotations=EGRESS,
                      ports=(("UDP", 8080),))
    e2e.start_agents()
    for f in served:  # egress: the VIP goes to the node running the endpoint
        await e2e.eventually(lambda f=f: _is(e2e.holders(vips[f]), {"node2"}), f"IPv{f} VIP on node2")
    client = e2e.lab.client
    sink = Sink(e2e.lab, client.netns, next(_PORTS))
    peer_sink = Sink(e2e.lab, peer.netns, next(_PORTS))
    try:
        for f, target, own in ((4, str(client.ipv4), pod.ipv4), (6, str(client.ipv6), pod.ipv6)):
            want = str(vips[f]) if f in served else own
            assert await e2e.eventually(
                lambda t=target, w=want: source_is(e2e, pod, sink, t, w),
                f"IPv{f} from {pod.name} arrives from {want}",
            )
            # Exempt (pod CIDR): untranslated whatever the family.
            peer_addr = peer.ipv4 if f == 4 else peer.ipv6
            assert await source(e2e, pod, peer_sink, peer_addr) == own
        # A pod on a node that does not hold the VIP is not translated.
        assert await source(e2e, peer, sink, str(client.ipv4)) == peer.ipv4
    finally:
        sink.close()
        peer_sink.close()
    if 4 in served:
        assert await e2e.eventually(lambda: annotation(e2e, app, "kube-vip.io/active-endpoint"),
                                    "active-endpoint written") == pod.ipv4
    if 6 in served:
        assert await e2e.eventually(lambda: annotation(e2e, app, "kube-vip.io/active-endpoint-ipv6"),
                                    "active-endpoint-ipv6 written") == pod.ipv6
    else:
        assert await annotation(e2e, app, "kube-vip.io/active-endpoint-ipv6") is None
    assert all(str(vips[f]) not in table(e2e, n.name) for n in e2e.nodes for f in (4, 6) if f not in served)
    await e2e.delete_service(app)
    for n in e2e.nodes:
        await e2e.eventually(lambda n=n: "snat" not in table(e2e, n.name), f"no SNAT rule left on {n.name}")


async def test_failover_moves_the_rules_and_a_restart_leaves_none(e2e: E2E, lab_pods: Pods) -> None:
    a = await lab_pods.add("fo", "node2")
    b = await lab_pods.add("fo", "node3")
    v4 = e2e.vip(4)
    await e2e.service("fo", [v4], annotations=EGRESS, ports=(("UDP", 8080),))
    e2e.start_agents()
    holder = await e2e.eventually(lambda: _one(e2e.holders(v4)), f"{v4} held by one node")
    assert holder in {"node2", "node3"}
    here, there = (a, b) if holder == "node2" else (b, a)
    other = "node3" if holder == "node2" else "node2"
    client = e2e.lab.client
    sink = Sink(e2e.lab, client.netns, next(_PORTS))
    try:
        assert await e2e.eventually(lambda: source_is(e2e, here, sink, str(client.ipv4), str(v4)),
                                    "the holder's pod leaves with the VIP")
        assert await source(e2e, there, sink, str(client.ipv4)) == there.ipv4
        # SIGKILL: no shutdown, the rules stay in the dead agent's node until a new agent starts there.
        e2e.fleet.agents[holder].kill()
        node = e2e.lab.node(holder)  # as if the node went down with it: its addresses go, its rules stay
        await asyncio.to_thread(AddressManager(node.interface, Netns(node.netns)).cleanup_stale, [])
        await e2e.eventually(lambda: _is(e2e.holders(v4), {other}), f"{v4} moved to {other}", within=90)
        assert await e2e.eventually(lambda: source_is(e2e, there, sink, str(client.ipv4), str(v4)),
                                    "the new holder's pod leaves with the VIP")
        await e2e.delete_service("fo")
        await e2e.eventually(lambda: "snat" not in table(e2e, other), f"no SNAT rule left on {other}")
        assert str(v4) in table(e2e, holder)  # the killed agent's rules are still there ...
        e2e.fleet.agents[holder].start(e2e.lab)
        await e2e.eventually(lambda: table(e2e, holder) == "", "... until its next start removes them")
        assert await source(e2e, here, sink, str(client.ipv4)) == here.ipv4
    finally:
        sink.close()


async def test_service_security_refuses_host_ports_on_the_vip(e2e: E2E) -> None:
    require_binary("nft")
    v4, v6 = e2e.vip(4), e2e.vip(6)
    await e2e.service("sec", [v4, v6], families=("IPv4", "IPv6"), policy="RequireDualStack")
    opened = e2e.vip(4)
    await e2e.service("open", [opened], annotations={"kube-vip.io/ignore-service-security": "true"})
    e2e.start_agents(enable_service_security="true")
    for vip in (v4, v6):
        node = await e2e.eventually(lambda vip=vip: _one(e2e.holders(vip)), f"{vip} held")
        assert await e2e.eventually(lambda vip=vip: e2e.reach(vip), f"{vip}:8080 answers") == node
        own = e2e.lab.node(node).ipv4 if vip.version == 4 else e2e.lab.node(node).ipv6
        # The agent's metrics port (2112) listens on every address: closed on the VIP, open on the node's.
        assert await _tcp(e2e, own, 2112, "HTTP")
        assert await e2e.eventually(lambda vip=vip: _closed(e2e, vip, 2112), f"{vip}:2112 refused")
    await e2e.eventually(lambda: _one(e2e.holders(opened)), f"{opened} held")
    assert await e2e.eventually(lambda: _tcp(e2e, opened, 2112, "HTTP"), "the opted-out VIP stays open")
    await e2e.delete_service("sec")
    for n in e2e.nodes:
        await e2e.eventually(lambda n=n: "service-security" not in table(e2e, n.name),
                             f"no guard left on {n.name}")
    # A graceful stop removes the table too.
    await e2e.service("sec2", [v4])
    holder = await e2e.eventually(lambda: _one(e2e.holders(v4)), f"{v4} held again")
    await e2e.eventually(lambda: "service-security" in table(e2e, holder), f"a guard on {holder}")
    await asyncio.to_thread(e2e.fleet.stop)
    assert all(table(e2e, n.name) == "" for n in e2e.nodes)


async def _closed(e2e: E2E, vip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> bool:
    return not await _tcp(e2e, vip, port, "HTTP")


async def _tcp(e2e: E2E, address: object, port: int, expect: str) -> bool:
    """Whether a TCP connection to address:port from the client is accepted (an HTTP request answered)."""
    script = probe_argv(str(address), port, 1.0)
    # The probe prints what the server sends first; an HTTP server sends nothing until asked, so ask.
    ask = "s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); print(s.recv(100)"
    script[2] = script[2].replace("print(s.recv(100)", ask)
    res = await e2e.lab.run_async(e2e.lab.client.netns, script, check=False)
    return expect in res.stdout


async def _one(value: Awaitable[set[str]]) -> str | None:
    got = await value
    return next(iter(got)) if len(got) == 1 else None


async def test_a_bad_egress_annotation_is_a_warning_and_costs_no_other_service(
    e2e: E2E, lab_pods: Pods
) -> None:
    pod = await lab_pods.add("egbad", "node1")
    good = await lab_pods.add("eggood", "node3")
    vb, vg = e2e.vip(4), e2e.vip(4)
    await e2e.service("egbad", [vb], ports=(("UDP", 8080),),
                      annotations={**EGRESS, "kube-vip.io/egress-destination-ports": "icmp:1,udp:9999"})
    await e2e.service("eggood", [vg], ports=(("UDP", 8080),), annotations=EGRESS)
    e2e.start_agents()

    async def warned() -> list[str]:
        return [m for t, r, m in await e2e.events("egbad") if r == "egress-annotation-invalid"]

    got = await e2e.eventually(warned, "a Warning naming the bad entry")
    assert any("kube-vip.io/egress-destination-ports" in m and "'icmp:1'" in m for m in got), got
    client = e2e.lab.client
    sink = Sink(e2e.lab, client.netns, next(_PORTS))
    sink_9999 = Sink(e2e.lab, client.netns, 9999)
    try:
        # The valid part applies: UDP to port 9999 leaves with the VIP, to another port untranslated ...
        await e2e.eventually(lambda: _is(e2e.holders(vb), {"node1"}), f"{vb} on node1")
        assert await e2e.eventually(lambda: source_is(e2e, pod, sink_9999, str(client.ipv4), str(vb)),
                                    "udp:9999 translated")
        assert await source(e2e, pod, sink, str(client.ipv4)) == pod.ipv4
        # ... and the other Service is untouched.
        await e2e.eventually(lambda: _is(e2e.holders(vg), {"node3"}), f"{vg} on node3")
        assert await e2e.eventually(lambda: source_is(e2e, good, sink, str(client.ipv4), str(vg)),
                                    "the good Service's pod leaves with its VIP")
    finally:
        sink.close()
        sink_9999.close()
