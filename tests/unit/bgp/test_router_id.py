"""The BGP router id: 32 bits even on an IPv6-only node (issue 25)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.bgp.settings import BgpSettings, Peer
from kubevip.bgp.speaker import Speaker
from kubevip.errors import BgpError

PEER = Peer(ipaddress.ip_address("fd00::1"), 65000)


def _rid(node_ips: list[str], **kw: object) -> ipaddress.IPv4Address:
    settings = BgpSettings(enabled=True, local_as=65001, peers=(PEER,), **kw)  # type: ignore[arg-type]
    return Speaker(settings, [ipaddress.ip_address(i) for i in node_ips])._resolve_router_id()


def test_an_ipv4_address_is_the_router_id_when_there_is_one() -> None:
    assert _rid(["fd6b:7669:7000:1::11", "198.18.1.11"]) == ipaddress.IPv4Address("198.18.1.11")


def test_an_ipv6_only_node_derives_its_router_id_from_its_address() -> None:
    assert _rid(["fe80::1", "fd6b:7669:7000:1::11"]) == ipaddress.IPv4Address("0.0.0.17")


def test_bgp_routerid_wins() -> None:
    rid = ipaddress.IPv4Address("10.0.0.1")
    assert _rid(["fd6b:7669:7000:1::11"], router_id=rid) == rid


@pytest.mark.parametrize("ips", [[], ["fe80::1", "::1"], ["2001:db8::1:0:0"]])
def test_no_usable_address_is_a_clear_error(ips: list[str]) -> None:
    with pytest.raises(BgpError, match="bgp_routerid"):
        _rid(ips)


@given(st.ip_addresses(v=6).filter(lambda a: not (a.is_link_local or a.is_loopback or a.is_multicast
                                                   or a.is_unspecified) and int(a) & 0xFFFF_FFFF))
def test_nodes_of_one_subnet_with_different_hosts_get_different_ids(a: ipaddress.IPv6Address) -> None:
    b = ipaddress.IPv6Address(int(a) ^ 1)
    if b.is_link_local or b.is_loopback or b.is_multicast or b.is_unspecified or not int(b) & 0xFFFF_FFFF:
        return
    assert _rid([str(a)]) != _rid([str(b)])


async def test_bgp_routerinterface_is_read_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """pyroute2's IPRoute cannot be opened inside a running event loop: start() must read the router
    interface in a worker thread (it used to call it on the loop)."""
    import asyncio

    from kubevip.bgp import speaker as speaker_mod

    on_loop: list[bool] = []

    def if_addrs(name: str) -> list[ipaddress.IPv4Address]:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return [ipaddress.IPv4Address("10.9.8.7")]

    class Stop(Exception):
        pass

    def stop_here(*_: object, **__: object) -> object:
        raise Stop  # the router id is resolved: nothing of ExaBGP is needed for this test

    settings = BgpSettings(enabled=True, local_as=65001, peers=(PEER,), router_interface="eth9")
    sp = Speaker(settings, [ipaddress.ip_address("fd6b:7669:7000:1::11")])
    monkeypatch.setattr(sp, "_if_addrs", if_addrs)
    monkeypatch.setattr(speaker_mod, "resolve_next_hops", stop_here)
    with pytest.raises(Stop):
        await sp.start()
    assert sp.router_id == ipaddress.IPv4Address("10.9.8.7")
    assert on_loop == [False]
