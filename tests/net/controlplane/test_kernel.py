"""Control-plane VIPs in a real kernel: both families up and down together, their own address protocol
(249), so the Service agent's addresses (248) and the control plane's never touch each other."""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubevip.controlplane.kernel import CONTROL_PLANE_PROTO, KernelVips, placements
from kubevip.core.rows import Row
from kubevip.lab.network import LabNetwork
from kubevip.net.addresses import ADDRESS_PROTO, AddressManager
from kubevip.net.namespace import Netns
from kubevip.net.settings import NetSettings
from tests.fixtures.prereqs import require_root_netns


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabNetwork]:
    require_root_netns()
    net = LabNetwork(f"k{secrets.token_hex(4)}", nodes=1, state_dir=tmp_path / "lab")
    try:
        net.up()
        yield net
    finally:
        net.down()


async def test_both_families_together_and_protocols_apart(lab: LabNetwork) -> None:
    node = lab.nodes[0]
    ns = Netns(node.netns)
    v4, v6 = lab.vip(4, 49), lab.vip(6, 49)
    svc4 = lab.vip(4, 0)
    services = AddressManager(node.interface, ns)  # what the Service agent uses (protocol 248)
    assert await asyncio.to_thread(services.add, svc4)
    k = KernelVips(NetSettings(interface=node.interface), ns=ns)
    want = placements((v4, v6), await asyncio.to_thread(k.interfaces))
    assert want == {Row(v4, node.interface), Row(v6, node.interface)}
    await k.converge(want)
    cp = AddressManager(node.interface, ns, proto=CONTROL_PLANE_PROTO)
    assert {a for a, _ in await asyncio.to_thread(cp.owned)} == {v4, v6}
    # The Service agent does not see ours ...
    assert {a for a, _ in await asyncio.to_thread(services.owned)} == {svc4}
    await asyncio.to_thread(services.cleanup_stale, ())  # ... and its clean-up leaves them in place
    assert {a for a, _ in await asyncio.to_thread(cp.owned)} == {v4, v6}
    assert await asyncio.to_thread(services.add, svc4)
    # A restarted control-plane agent removes only its own leftovers.
    fresh = KernelVips(NetSettings(interface=node.interface), ns=ns)
    gone = await asyncio.to_thread(fresh.remove_leftovers)
    assert {p.address for p in gone} == {v4, v6}
    present = {a for a, _ in await asyncio.to_thread(services.present)}
    assert svc4 in present and v4 not in present and v6 not in present
    assert ADDRESS_PROTO != CONTROL_PLANE_PROTO
    await k.close()
    await fresh.close()


async def test_converge_to_nothing_withdraws_both(lab: LabNetwork) -> None:
    node = lab.nodes[0]
    ns = Netns(node.netns)
    k = KernelVips(NetSettings(interface=node.interface), ns=ns)
    v4 = ipaddress.IPv4Address(str(lab.vip(4, 48)))
    v6 = ipaddress.IPv6Address(str(lab.vip(6, 48)))
    await k.converge(placements((v4, v6), await asyncio.to_thread(k.interfaces)))
    assert {p.address for p in k.held} == {v4, v6}
    await k.converge(frozenset())
    assert not k.held
    assert not await asyncio.to_thread(AddressManager(node.interface, ns, proto=CONTROL_PLANE_PROTO).owned)
    await k.close()


async def test_prepared_sockets_announce_the_takeover(lab: LabNetwork) -> None:
    """`prepare` opens each family's announcement socket ahead; the takeover uses them (none is opened on
    the critical path) and announces both families at once."""
    node = lab.nodes[0]
    ns = Netns(node.netns)
    k = KernelVips(NetSettings(interface=node.interface, arp=True), ns=ns)
    assert k.announcer is not None
    await asyncio.to_thread(k.prepare)
    assert set(k._ready) == {(node.interface, 4), (node.interface, 6)}
    known = k.known_interfaces()
    assert known == {4: node.interface, 6: node.interface}
    v4, v6 = lab.vip(4, 43), lab.vip(6, 43)
    await k.converge(placements((v4, v6), known))
    assert not k._ready  # both taken by the announcer
    assert k.announcer.sent.get(v4, 0) >= 1 and k.announcer.sent.get(v6, 0) >= 1
    await k.converge(frozenset())
    await k.close()
