"""BGP peers from Node annotations (kube-vip's `annotation` prefix) against a real router in the lab:
no session until the annotations exist, routes once they do, and a change of the annotations applied
without restarting the agent (a wrong peer AS takes the route away, the right one brings it back)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kubevip.lab.bgp import NODE_AS, ROUTER_AS, LabBgp
from kubevip.lab.network import LabNetwork
from tests.e2e.conftest import E2E
from tests.e2e.test_bgp_agent import TIMINGS, Bgp
from tests.e2e.test_placement import node_patched
from tests.net.test_bgp_speaker import _require_daemon

pytestmark = [pytest.mark.e2e, pytest.mark.bgp]

PREFIX = "bgp.kubevip.test"
DAEMON = "gobgpd"  # the format is under test, not the daemons (test_bgp_agent covers all three)


@pytest.fixture
def router(lab_network: LabNetwork, tmp_path: Path) -> Iterator[LabBgp]:
    _require_daemon(DAEMON)
    state = tmp_path / "bgp"
    state.mkdir()
    bgp = LabBgp(lab_network, state)
    try:
        bgp.up(DAEMON)
        yield bgp
    finally:
        bgp.down()


@pytest.fixture
async def bgp(e2e: E2E, router: LabBgp) -> AsyncIterator[Bgp]:
    b = Bgp(e2e, router)
    try:
        yield b
    finally:
        await asyncio.to_thread(b.cleanup)


def _annotations(e2e: E2E, router: LabBgp, node: str, peer_as: int = ROUTER_AS) -> dict[str, str]:
    doc = router.state()
    assert doc is not None
    n = next(x for x in e2e.nodes if x.name == node)
    return {
        f"{PREFIX}/bgp-peers-0-node-asn": str(NODE_AS),  # Equinix Metal's spelling
        f"{PREFIX}/src-ip": str(n.ipv4),
        f"{PREFIX}/peer-asn": str(peer_as),
        f"{PREFIX}/bgp-peers-0-peer-ip": doc["router"]["ipv4"],
    }


async def test_peers_from_node_annotations_follow_changes(e2e: E2E, router: LabBgp, bgp: Bgp) -> None:
    vip = e2e.vip(4)
    await e2e.service("annot", [vip])
    env = {k: v for k, v in router.agent_env().items() if k not in ("bgp_peers", "bgp_as")}
    e2e.start_agents(**env, **TIMINGS, annotation=PREFIX)
    async with contextlib.AsyncExitStack() as stack:
        for n in e2e.nodes:
            body = {"metadata": {"annotations": _annotations(e2e, router, n.name)}}
            await stack.enter_async_context(node_patched(e2e, n.name, body))
        holder = await e2e.eventually(lambda: _one_route(bgp, vip), "the VIP's route at the router")
        # The holder's peer AS becomes wrong: its session cannot come up, the route goes.
        wrong = {"metadata": {"annotations": _annotations(e2e, router, holder, peer_as=64999)}}
        await e2e.core.patch_node(holder, wrong, _content_type="application/merge-patch+json")  # type: ignore[call-arg]
        await bgp.eventually_rib({}, "route withdrawn with the wrong peer AS")
        right = {"metadata": {"annotations": _annotations(e2e, router, holder)}}
        await e2e.core.patch_node(holder, right, _content_type="application/merge-patch+json")  # type: ignore[call-arg]
        await bgp.eventually_rib({vip: {holder}}, "route back with the right peer AS")
        assert all(a.starts == 1 and a.running for a in e2e.fleet.agents.values()), "no agent restarted"


async def _one_route(bgp: Bgp, vip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """The node whose next hop the router has for `vip`, when it has exactly one."""
    hops = (await bgp.rib()).get(ipaddress.ip_network(vip), frozenset())
    if len(hops) != 1:
        return None
    hop = next(iter(hops))
    return next((n for n in bgp.by_name if bgp.hop(n, hop.version) == hop), None)
