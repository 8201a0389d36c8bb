"""The packet-rule layer (net/nftables.py) in a real kernel: pod -> node (forwards, holds the VIPs) ->
client. SNAT per family, exemptions, Service security, atomic replacement, and other tables untouched."""

from __future__ import annotations

import ipaddress
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from kubevip.core.egress import GuardRule, PacketRules, SnatRule
from kubevip.core.views import IPFamily
from kubevip.errors import NetworkError
from kubevip.lab.tcpprobe import probe_argv
from kubevip.lab.udpprobe import Sink, send_argv
from kubevip.net.namespace import Netns
from kubevip.net.nftables import PacketRuleTable
from tests.fixtures.prereqs import require_binary, require_root_netns
from tests.fixtures.waiting import wait_until

POD4, POD6 = ipaddress.ip_address("10.244.1.2"), ipaddress.ip_address("fd00:10:244:1::2")
VIP4, VIP6 = ipaddress.ip_address("198.51.100.200"), ipaddress.ip_address("2001:db8:1::200")
NODE4, NODE6 = "198.51.100.11", "2001:db8:1::11"
CLIENT4, CLIENT6 = "198.51.100.100", "2001:db8:1::100"
EXEMPT4, EXEMPT6 = "198.51.100.101", "2001:db8:1::101"  # also the client's, but exempt from SNAT


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


@dataclass
class Topo:
    pod: str
    node: str
    client: str

    def run(self, ns: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=30)

    def popen(self, netns: str, argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["ip", "netns", "exec", netns, *argv], **kw)  # type: ignore[call-overload]


@pytest.fixture
def topo() -> Iterator[Topo]:
    require_root_netns()
    require_binary("nft")
    tag = secrets.token_hex(3)
    t = Topo(f"nft-{tag}-pod", f"nft-{tag}-node", f"nft-{tag}-client")
    try:
        for ns in (t.pod, t.node, t.client):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0",
               "net.ipv6.conf.default.accept_dad=0")
        sh("ip", "netns", "exec", t.node, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1",
           "net.ipv6.conf.all.forwarding=1")
        sh("ip", "-n", t.node, "link", "add", "kp0", "type", "veth", "peer", "name", "eth0", "netns", t.pod)
        sh("ip", "-n", t.node, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
           "netns", t.client)
        sh("ip", "-n", t.node, "addr", "add", "10.244.1.1/32", "dev", "kp0")
        sh("ip", "-n", t.node, "addr", "add", "fd00:10:244:1::1/128", "dev", "kp0", "nodad")
        for ns, a4, a6 in ((t.node, NODE4, NODE6), (t.client, CLIENT4, CLIENT6)):
            sh("ip", "-n", ns, "addr", "add", f"{a4}/24", "dev", "eth0")
            sh("ip", "-n", ns, "addr", "add", f"{a6}/64", "dev", "eth0", "nodad")
        for a in (f"{VIP4}/32", f"{VIP6}/128"):
            sh("ip", "-n", t.node, "addr", "add", a, "dev", "eth0", "nodad")
        sh("ip", "-n", t.client, "addr", "add", f"{EXEMPT4}/24", "dev", "eth0")
        sh("ip", "-n", t.client, "addr", "add", f"{EXEMPT6}/64", "dev", "eth0", "nodad")
        sh("ip", "-n", t.pod, "addr", "add", f"{POD4}/32", "dev", "eth0")
        sh("ip", "-n", t.pod, "addr", "add", f"{POD6}/128", "dev", "eth0", "nodad")
        for ns, dev in ((t.node, "kp0"), (t.node, "eth0"), (t.pod, "eth0"), (t.client, "eth0")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", t.node, "route", "add", f"{POD4}/32", "dev", "kp0")
        sh("ip", "-n", t.node, "route", "add", f"{POD6}/128", "dev", "kp0")
        sh("ip", "-n", t.pod, "route", "add", "10.244.1.1/32", "dev", "eth0")
        sh("ip", "-n", t.pod, "route", "add", "default", "via", "10.244.1.1", "dev", "eth0")
        sh("ip", "-n", t.pod, "-6", "route", "add", "fd00:10:244:1::1/128", "dev", "eth0")
        sh("ip", "-n", t.pod, "-6", "route", "add", "default", "via", "fd00:10:244:1::1", "dev", "eth0")
        # The client answers pods through the node (as the lab's client does).
        sh("ip", "-n", t.client, "route", "add", "10.244.0.0/16", "via", NODE4)
        sh("ip", "-n", t.client, "-6", "route", "add", "fd00:10:244::/48", "via", NODE6)
        yield t
    finally:
        for ns in (t.pod, t.node, t.client):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def snat(family: IPFamily, **kw: object) -> SnatRule:
    v4 = family == IPFamily.IPV4
    args: dict[str, object] = {
        "service": "default/web", "family": family, "vip": VIP4 if v4 else VIP6,
        "sources": (POD4 if v4 else POD6,),
        "exempt": (ipaddress.ip_network(f"{EXEMPT4}/32") if v4 else ipaddress.ip_network(f"{EXEMPT6}/128"),),
        "allowed": None, "ports": (),
    }
    args.update(kw)
    return SnatRule(**args)  # type: ignore[arg-type]


def source_at_client(t: Topo, sink: Sink, target: str, payload: str) -> str | None:
    def sent() -> str | None:
        t.run(t.pod, send_argv(target, sink.port, payload))
        return sink.source(payload, 0.5)
    return wait_until(sent, f"datagram {payload} to {target}", within=20)


def test_snat_per_family_exemptions_and_untouched_families(topo: Topo) -> None:
    table = PacketRuleTable(ns=Netns(topo.node))
    sink = Sink(topo, topo.client, 9000)
    try:
        # Before any rule: the pod's own addresses.
        assert source_at_client(topo, sink, CLIENT4, "before4") == str(POD4)
        assert table.apply(PacketRules(snat=(snat(IPFamily.IPV4),)))
        assert source_at_client(topo, sink, CLIENT4, "v4") == str(VIP4)
        assert source_at_client(topo, sink, EXEMPT4, "v4-exempt") == str(POD4)
        assert source_at_client(topo, sink, CLIENT6, "v6-unserved") == str(POD6)  # no IPv6 rule
        table.apply(PacketRules(snat=(snat(IPFamily.IPV4), snat(IPFamily.IPV6))))
        assert source_at_client(topo, sink, CLIENT6, "v6") == str(VIP6)
        assert source_at_client(topo, sink, EXEMPT6, "v6-exempt") == str(POD6)
        # Destination ports: only UDP 9000 is translated, so the sink sees the VIP; another port not.
        table.apply(PacketRules(snat=(snat(IPFamily.IPV4, ports=(("udp", 9000),)),)))
        assert source_at_client(topo, sink, CLIENT4, "port") == str(VIP4)
        table.apply(PacketRules(snat=(snat(IPFamily.IPV4, ports=(("udp", 53),)),)))
        assert source_at_client(topo, sink, CLIENT4, "other-port") == str(POD4)
        table.remove()
        assert table.listing() == ""
        assert source_at_client(topo, sink, CLIENT4, "after") == str(POD4)
    finally:
        sink.close()


def test_replacement_is_atomic_idempotent_and_leaves_other_tables_alone(topo: Topo) -> None:
    sh("ip", "netns", "exec", topo.node, "nft", "add", "table", "inet", "other")
    sh("ip", "netns", "exec", topo.node, "nft", "add", "chain", "inet", "other", "c")
    table = PacketRuleTable(ns=Netns(topo.node))
    table.remove()  # start-up: nothing there yet, no error
    good = PacketRules(snat=(snat(IPFamily.IPV4),))
    assert table.apply(good) and not table.apply(good)
    before = table.listing()
    assert str(VIP4) in before
    bad = PacketRules(snat=(snat(IPFamily.IPV4, exempt=(ipaddress.ip_network("fd00::/8"),)),))
    with pytest.raises(NetworkError, match="nft rejected"):
        table.apply(bad)
    assert table.listing() == before  # the old table stands, whole
    # A second agent's table (another name) is independent of ours.
    other_agent = PacketRuleTable("kubevip-b", ns=Netns(topo.node))
    other_agent.apply(PacketRules(guards=(GuardRule(VIP6, (("tcp", 80),)),)))
    table.remove()
    assert table.listing() == ""
    assert str(VIP6) in other_agent.listing()
    other_agent.remove()
    out = topo.run(topo.node, ["nft", "list", "ruleset"]).stdout
    assert "table inet other" in out and "kubevip" not in out


@pytest.mark.parametrize("family", [4, 6])
def test_service_security_allows_only_the_services_ports_on_the_vip(topo: Topo, family: int) -> None:
    vip, node = (str(VIP4), NODE4) if family == 4 else (str(VIP6), NODE6)
    responders = [
        topo.popen(topo.node, [sys.executable, "-m", "kubevip.lab.responder", "node", str(port)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for port in (8080, 2112)
    ]
    try:
        def answer(address: str, port: int) -> str:
            return topo.run(topo.client, probe_argv(address, port, 1.0)).stdout.strip()

        for port in (8080, 2112):
            assert wait_until(lambda port=port: answer(vip, port), f"{vip}:{port} open", within=20) == "node"
        table = PacketRuleTable(ns=Netns(topo.node))
        only_8080 = (("tcp", 8080),)
        table.apply(PacketRules(guards=(GuardRule(VIP4, only_8080), GuardRule(VIP6, only_8080))))
        assert answer(vip, 8080) == "node"
        assert answer(vip, 2112) == ""  # the host port is refused on the VIP ...
        assert answer(node, 2112) == "node"  # ... and still answers on the node's own address
        assert topo.run(topo.client, ["ping", f"-{family}", "-c1", "-W2", vip]).returncode == 0
        table.remove()
        assert answer(vip, 2112) == "node"
    finally:
        for p in responders:
            p.kill()
            p.wait()


@pytest.mark.parametrize("family", [4, 6])
def test_forget_flows_makes_a_running_udp_flow_take_the_new_translation(topo: Topo, family: int) -> None:
    from kubevip.net.conntrack import forget_flows

    fam = IPFamily.IPV4 if family == 4 else IPFamily.IPV6
    pod, vip, client = (POD4, VIP4, CLIENT4) if family == 4 else (POD6, VIP6, CLIENT6)
    sink = Sink(topo, topo.client, 9002, reply=True)
    # One socket, one two-way flow (the sink answers, so conntrack calls it established), begun while
    # our table already exists without a rule for this pod: its entry is bound to "no translation".
    script = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET,socket.SOCK_DGRAM)\n"
        "s.connect((sys.argv[1],int(sys.argv[2])))\n"
        "for line in sys.stdin:\n"
        " s.send(line.strip().encode())\n"
    )
    sender = topo.popen(topo.pod, [sys.executable, "-c", script, client, "9002"], stdin=subprocess.PIPE)
    n = iter(range(1000))

    def send() -> str | None:
        tag = f"flow{next(n)}"
        sender.stdin.write(f"{tag}\n".encode())  # type: ignore[union-attr]
        sender.stdin.flush()  # type: ignore[union-attr]
        return sink.source(tag, 0.5)

    table = PacketRuleTable(ns=Netns(topo.node))
    other = ipaddress.ip_address("10.244.1.99" if family == 4 else "fd00:10:244:1::99")
    table.apply(PacketRules(snat=(snat(fam, sources=(other,)),)))
    try:
        assert wait_until(send, "the flow's first datagram", within=20) == str(pod)
        assert send() == str(pod)
        table.apply(PacketRules(snat=(snat(fam),)))
        assert send() == str(pod)  # the flow keeps the translation of its first packet ...
        assert forget_flows([pod, other], Netns(topo.node)) >= 1
        assert send() == str(vip)  # ... until its entry is forgotten
        assert forget_flows([], Netns(topo.node)) == 0
    finally:
        sender.kill()
        sender.wait()
        sink.close()


async def test_the_driver_puts_back_a_table_someone_removed(topo: Topo) -> None:
    from kubevip.agent.packets import PacketRuleDriver
    from kubevip.net.settings import PacketSettings

    driver = PacketRuleDriver(PacketSettings(service_security=True), None, "node", Netns(topo.node))
    rules = PacketRules(guards=(GuardRule(VIP4, (("tcp", 8080),)),))
    await driver.remove()
    assert await driver.apply(rules)
    assert not await driver.heal(rules)  # still there: nothing to do
    sh("ip", "netns", "exec", topo.node, "nft", "flush", "ruleset")  # a firewall reload, say
    assert not driver.table.present()
    assert await driver.heal(rules)
    assert driver.table.present() and str(VIP4) in driver.table.listing()
    await driver.remove()
    assert not driver.table.present()
