"""Aborting the TCP connections of an address a node gave up, in a real kernel (sock_diag SOCK_DESTROY).

Left: a client on the node reached the VIP while it was local (source = VIP, or source = the node
address); once the address is gone the connection neither works nor fails. Arrived: a client on the node
reached the VIP at another node, which gives it up; once the VIP is here the connection is dead too.
After `abort_connections` the owners see the error at once; other connections and listeners stay."""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubevip.controlplane.kernel import KernelVips, placements
from kubevip.lab.network import LabNetwork
from kubevip.net.addresses import AddressManager
from kubevip.net.connections import abort_connections
from kubevip.net.namespace import Netns
from kubevip.net.settings import NetSettings
from tests.fixtures.prereqs import require_root_netns

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabNetwork]:
    require_root_netns()
    net = LabNetwork(f"q{secrets.token_hex(4)}", nodes=2, state_dir=tmp_path / "lab")
    try:
        net.up()
        yield net
    finally:
        net.down()


class Pair:
    """A dual-stack listener on `::` in the node namespace and connected (client, server) sockets."""

    def __init__(self, ns: Netns) -> None:
        self.ns = ns
        self.listener = ns.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self.listener.bind(("::", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        self.open: list[socket.socket] = [self.listener]

    def connect(self, ip: IPAddress, source: IPAddress | None = None) -> tuple[socket.socket, socket.socket]:
        fam = socket.AF_INET if ip.version == 4 else socket.AF_INET6
        c = self.ns.socket(fam, socket.SOCK_STREAM)
        c.settimeout(3)
        if source is not None:
            c.bind((str(source), 0))
        c.connect((str(ip), self.port))
        self.listener.settimeout(3)
        s, _ = self.listener.accept()
        s.settimeout(3)
        self.open += [c, s]
        return c, s

    def close(self) -> None:
        for s in self.open:
            s.close()


def works(c: socket.socket, s: socket.socket, timeout: float = 3.0) -> bool:
    """A byte from the client reaches the server within `timeout` (False when it does not arrive)."""
    c.sendall(b"x")
    s.settimeout(timeout)
    try:
        return s.recv(1) == b"x"
    except TimeoutError:
        return False


def aborted(sock: socket.socket) -> bool:
    """The owner learns at once that the connection is gone (an error or end of stream, no timeout)."""
    sock.settimeout(3)
    try:
        sock.sendall(b"y")
        return sock.recv(1) == b""
    except (ConnectionAbortedError, ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_left_a_local_connection_to_a_removed_vip_hangs_until_aborted(lab: LabNetwork) -> None:
    node = lab.nodes[0]
    ns = Netns(node.netns)
    vips: list[IPAddress] = [lab.vip(4, 47), lab.vip(6, 47)]
    m = AddressManager(node.interface, ns)
    for ip in vips:
        assert m.add(ip)
    pair = Pair(ns)
    try:
        conns = [pair.connect(ip) for ip in vips]  # source = the VIP
        conns += [pair.connect(ip, n) for ip, n in zip(vips, (node.ipv4, node.ipv6), strict=True)]
        other = pair.connect(node.ipv4)  # the node's own address: must survive
        assert all(works(c, s) for c, s in conns)
        for ip in vips:
            assert m.remove(ip)
        # The failure mode: nothing tells either end, data just stops flowing.
        assert not works(*conns[0], timeout=1.0)
        assert sum(abort_connections(ip, False, ns) for ip in vips) >= 2 * len(conns)  # both ends
        for c, s in conns:
            assert aborted(c) and aborted(s)
        assert works(*other)
        c2, s2 = pair.connect(node.ipv4)  # the listener still accepts
        assert works(c2, s2)
        assert abort_connections(vips[0], False, ns) == 0  # nothing left
    finally:
        pair.close()


def test_arrived_a_connection_to_the_previous_holder_is_aborted(lab: LabNetwork) -> None:
    here, there = lab.nodes[0], lab.nodes[1]
    ns, ns_there = Netns(here.netns), Netns(there.netns)
    vips: list[IPAddress] = [lab.vip(4, 45), lab.vip(6, 45)]
    m, m_there = AddressManager(here.interface, ns), AddressManager(there.interface, ns_there)
    for ip in vips:
        assert m_there.add(ip)
    remote, local = Pair(ns_there), Pair(ns)
    try:
        old = []
        for ip in vips:
            c = ns.socket(socket.AF_INET if ip.version == 4 else socket.AF_INET6, socket.SOCK_STREAM)
            c.settimeout(3)
            c.connect((str(ip), remote.port))
            remote.listener.settimeout(3)
            s, _ = remote.listener.accept()
            remote.open += [c, s]
            old.append((c, s))
            assert works(c, s)
        for ip in vips:  # the VIP moves here
            assert m_there.remove(ip)
            assert m.add(ip)
        fresh = [local.connect(ip) for ip in vips]  # made here after the move: must stay
        assert not works(old[0][1], old[0][0], timeout=1.0)  # the old holder cannot reach it any more
        assert sum(abort_connections(ip, True, ns) for ip in vips) == len(vips)
        for c, _ in old:
            assert aborted(c)
        assert all(works(c, s) for c, s in fresh)
    finally:
        remote.close()
        local.close()


async def test_kernel_vips_abort_local_connections_when_withdrawing(lab: LabNetwork) -> None:
    node = lab.nodes[0]
    ns = Netns(node.netns)
    v4, v6 = lab.vip(4, 46), lab.vip(6, 46)
    k = KernelVips(NetSettings(interface=node.interface), ns=ns)
    k.announcer = None  # addresses only: announcements are not what this test is about
    await k.converge(placements((v4, v6), await asyncio.to_thread(k.interfaces)))
    pair = Pair(ns)
    try:
        c4, s4 = await asyncio.to_thread(pair.connect, v4)
        c6, s6 = await asyncio.to_thread(pair.connect, v6)
        await k.converge(frozenset())
        for sock in (c4, s4, c6, s6):
            assert await asyncio.to_thread(aborted, sock)
    finally:
        pair.close()
        await k.close()


async def test_kernel_vips_withdrawal_resets_remote_clients(lab: LabNetwork) -> None:
    """A peer's client served through the VIP here learns at once when the VIP leaves (a RST sent while
    the address was still up), instead of waiting for data that never comes."""
    here, peer = lab.nodes[0], lab.nodes[1]
    v4, v6 = lab.vip(4, 44), lab.vip(6, 44)
    k = KernelVips(NetSettings(interface=here.interface), ns=Netns(here.netns))
    k.announcer = None
    await k.converge(placements((v4, v6), await asyncio.to_thread(k.interfaces)))
    server = Pair(Netns(here.netns))
    try:
        clients = []
        for ip in (v4, v6):
            c = Netns(peer.netns).socket(socket.AF_INET if ip.version == 4 else socket.AF_INET6,
                                         socket.SOCK_STREAM)
            c.settimeout(3)
            await asyncio.to_thread(c.connect, (str(ip), server.port))
            s, _ = await asyncio.to_thread(server.listener.accept)
            server.open += [c, s]
            clients.append(c)
        await k.converge(frozenset())
        for c in clients:  # only waits, as a watch does: must not time out
            c.settimeout(3)
            try:
                got = await asyncio.to_thread(c.recv, 1)
            except (ConnectionResetError, ConnectionAbortedError):
                got = b""
            assert got == b""
    finally:
        server.close()
        await k.close()
