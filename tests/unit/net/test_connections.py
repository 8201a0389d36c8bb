"""Which connections a VIP move leaves dead (`dead_after_move`), and how sockets name their ends."""

from __future__ import annotations

import ipaddress
import socket

from hypothesis import given
from hypothesis import strategies as st

from kubevip.ip import IPAddress
from kubevip.net.connections import SockId, dead_after_move

VIP = ipaddress.ip_address("192.0.2.10")
NODE = ipaddress.ip_address("192.0.2.1")
OTHER = ipaddress.ip_address("192.0.2.2")

addresses = st.sampled_from([VIP, NODE, OTHER, ipaddress.ip_address("198.51.100.7")])
ports = st.sampled_from([6443, 443, 40000, 40001])
endpoints = st.tuples(addresses, ports)
connections = st.tuples(endpoints, endpoints)


@given(st.sets(connections), st.booleans())
def test_only_connections_of_the_vip_are_touched(conns: set[tuple[tuple[IPAddress, int], ...]],
                                                 arrived: bool) -> None:
    dead = dead_after_move(conns, VIP, arrived)
    assert dead <= conns
    assert all(VIP in (c[0][0], c[1][0]) for c in dead)


@given(st.sets(connections))
def test_left_kills_every_connection_of_the_vip(conns: set[tuple[tuple[IPAddress, int], ...]]) -> None:
    assert dead_after_move(conns, VIP, arrived=False) == {c for c in conns if VIP in (c[0][0], c[1][0])}


@given(st.sets(connections))
def test_arrived_keeps_connections_with_their_server_end_here(
    conns: set[tuple[tuple[IPAddress, int], ...]],
) -> None:
    dead = dead_after_move(conns, VIP, arrived=True)
    for local, remote in dead:
        assert remote[0] == VIP and (remote, local) not in conns  # reached the previous holder
    for local, remote in conns - dead:
        assert remote[0] != VIP or (remote, local) in conns


def test_arrived_examples() -> None:
    to_old_holder = ((NODE, 40000), (VIP, 6443))
    local_client = ((NODE, 40001), (VIP, 6443))
    local_server = ((VIP, 6443), (NODE, 40001))
    served_peer = ((VIP, 6443), (OTHER, 40000))  # a peer's client reaching us: alive
    conns = {to_old_holder, local_client, local_server, served_peer}
    assert dead_after_move(conns, VIP, arrived=True) == {to_old_holder}
    assert dead_after_move(conns, VIP, arrived=False) == conns


def test_sockets_name_mapped_ipv4_as_ipv4() -> None:
    mapped = ipaddress.IPv6Address("::ffff:192.0.2.10").packed
    server = SockId(socket.AF_INET6, 6443, 40001, mapped, ipaddress.IPv6Address("::ffff:192.0.2.1").packed,
                    0, bytes(8))
    client = SockId(socket.AF_INET, 40001, 6443, NODE.packed + bytes(12), VIP.packed + bytes(12), 0, bytes(8))
    assert server.ends() == ((VIP, 6443), (NODE, 40001))
    assert client.ends() == ((NODE, 40001), (VIP, 6443))
    v6 = ipaddress.IPv6Address("2001:db8::10")
    assert SockId(socket.AF_INET6, 1, 2, v6.packed, v6.packed, 0, bytes(8)).ends() == ((v6, 1), (v6, 2))
