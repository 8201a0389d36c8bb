"""The family-relevant end-to-end cases on every `--stack` (dual, IPv4-only, IPv6-only lab networks sharing
the session control plane, see `e2e_stack`): create -> answering and failover, a Service asking for the
family the nodes lack, IPAM with a pool of the lab's families, and BGP announcements (gobgpd).

On a single-stack lab, a Service that asks for the missing family (only that family's VIP, RequireDualStack
or PreferDualStack with both VIPs, an IPAM family without pool) gets a Warning naming the family, and the
neighbours and the Service's own family of the lab keep working."""

from __future__ import annotations

import asyncio
import ipaddress
import signal
from collections.abc import AsyncIterator, Awaitable

import pytest

from kubevip.ipam.controller import IpamController, IpamSettings
from kubevip.ipam.service import ANNOTATION_IPS
from kubevip.kube.rest import RestClient
from kubevip.lab import podnet
from kubevip.lab.bgp import LabBgp
from kubevip.lab.ipam import configmap, ipam_pool
from kubevip.lab.tcpprobe import probe_argv
from kubevip.net.addresses import AddressManager
from kubevip.net.namespace import Netns
from tests.e2e.conftest import E2E, IPAddress
from tests.e2e.test_bgp_agent import TIMINGS
from tests.net.test_bgp_speaker import _require_daemon

pytestmark = pytest.mark.e2e

SINGLE = pytest.mark.parametrize("e2e_stack", ["ipv4", "ipv6"], indirect=True)


def _families(e2e: E2E) -> tuple[tuple[str, ...], str]:
    """ipFamilies and ipFamilyPolicy of a Service with every family of the lab."""
    fams = tuple(f"IPv{f}" for f in e2e.families)
    return fams, "PreferDualStack" if len(fams) == 2 else "SingleStack"


def _other_vip(e2e: E2E, index: int) -> IPAddress:
    """An address of the family the lab lacks, from the pool the lab would have for it."""
    t = e2e.lab.topo
    first = t.vip_pool_v6[0] if 4 in e2e.families else t.vip_pool_v4[0]
    return first + 40 + index


def _both_pools(e2e: E2E) -> str:
    """vip_allowed_cidrs naming both families' pools: what is under test is the missing interface, not
    the address policy (which would refuse the missing family's VIP first)."""
    t = e2e.lab.topo
    return ",".join(
        str(n) for first, last in (t.vip_pool_v4, t.vip_pool_v6)
        for n in ipaddress.summarize_address_range(first, last)  # type: ignore[arg-type]
    )


async def test_create_answers_and_fails_over(e2e_stack: E2E) -> None:
    e2e = e2e_stack
    vips = [e2e.vip(f) for f in e2e.families]
    fams, policy = _families(e2e)
    await e2e.service("ha", vips, families=fams, policy=policy)
    e2e.start_agents()
    first = {v: await e2e.eventually(lambda v=v: e2e.reach(v), f"{v} answers") for v in vips}
    assert await e2e.eventually(
        lambda: _is(e2e.ingress("ha"), [(str(v), "VIP") for v in vips]), "status lists the lab's VIPs"
    )
    owned = await e2e.owned()
    assert {a.version for addrs in owned.values() for a in addrs} == set(e2e.families), owned
    victim = first[vips[0]]
    e2e.fleet.agents[victim].signal(signal.SIGKILL)
    e2e.fleet.agents[victim].kill()
    # As a crashed node would vanish: the killed agent's address leaves the segment with it.
    node = e2e.lab.node(victim)
    await asyncio.to_thread(AddressManager(node.interface, Netns(node.netns)).cleanup_stale, [])
    for v in vips:
        second = await e2e.eventually(lambda v=v: _reach_other(e2e, v, victim), f"{v} answered elsewhere")
        assert await e2e.holders(v) == {second}, f"exactly the answering node holds {v}"


@SINGLE
async def test_service_asking_for_the_missing_family_warns_and_costs_nothing(e2e_stack: E2E) -> None:
    e2e = e2e_stack
    (fam,) = e2e.families
    other = 10 - fam
    mine, ok = e2e.vip(fam), e2e.vip(fam)
    theirs = [_other_vip(e2e, i) for i in range(3)]
    both = (f"IPv{fam}", f"IPv{other}")
    await e2e.service("ok", [ok], families=(f"IPv{fam}",))
    await e2e.service("other", [theirs[0]], families=(f"IPv{other}",))
    await e2e.service("require", [e2e.vip(fam), theirs[1]], families=both, policy="RequireDualStack")
    await e2e.service("prefer", [mine, theirs[2]], families=both, policy="PreferDualStack")
    e2e.start_agents(vip_allowed_cidrs=_both_pools(e2e))
    assert await e2e.eventually(lambda: e2e.reach(ok), "the healthy neighbour answers")
    assert await e2e.eventually(lambda: e2e.reach(mine), "PreferDualStack: the lab's family answers")
    for name, vip in (("other", theirs[0]), ("prefer", theirs[2])):
        events = await e2e.eventually(
            lambda name=name: _warnings(e2e, name, "no-interface-for-family"), f"{name}: a Warning"
        )
        assert any(f"IPv{other} interface for {vip}" in m for _, _, m in events), events
    owned = await e2e.owned()
    assert not any(a.version == other for addrs in owned.values() for a in addrs), owned
    assert await e2e.ingress("other") == []
    # The status of "prefer" is written by the holder of its primary VIP; the missing family's VIP may be
    # held by another node, which alone knows it cannot announce it (docs/agent.md): only the lab
    # family's VIP is asserted here; "other" above has its one VIP's holder as writer.
    assert await e2e.eventually(lambda: _lists(e2e.ingress("prefer"), (str(mine), "VIP")), "prefer's status")
    assert await e2e.eventually(lambda: _is(e2e.ingress("ok"), [(str(ok), "VIP")]), "ok's status")
    assert [e for e in await e2e.events("ok") if e[0] == "Warning"] == []


@SINGLE  # dual: tests/e2e/test_ipam_lab.py
async def test_ipam_pool_of_the_lab_families(e2e_stack: E2E, rest_admin: RestClient) -> None:
    e2e = e2e_stack
    pool = ipam_pool(e2e.lab.vip_pool)  # the lab's families only: a single-stack cluster's ConfigMap
    data = {f"range-{e2e.ns}": configmap(pool)["data"]["range-global"]}  # type: ignore[index]
    await e2e.core.create_namespaced_config_map(
        e2e.ns, {"metadata": {"name": "kvt-ipam", "namespace": e2e.ns}, "data": data}
    )
    ctl = IpamController(rest_admin, IpamSettings(configmap="kvt-ipam", namespace=e2e.ns, retry_seconds=0.5))
    await ctl.start()
    try:
        fams, policy = _families(e2e)
        await e2e.service("web", "", families=fams, policy=policy)
        missing = [f for f in (4, 6) if f not in e2e.families]
        if missing:  # a Service of the family without pool: told why, costs "web" nothing
            await e2e.service("lost", "", families=(f"IPv{missing[0]}",))
        e2e.start_agents()
        addrs = await e2e.eventually(lambda: _allocated(e2e, "web", len(fams)), "IPAM allocates per family")
        assert [a.version for a in addrs] == list(e2e.families)
        for a in addrs:
            lo, hi = pool[a.version]
            assert lo <= a <= hi, f"{a} outside the IPAM pool {lo}-{hi}"
            assert await e2e.eventually(lambda a=a: e2e.reach(a), f"client reaches the allocated {a}")
        if missing:
            msgs = await e2e.eventually(lambda: _ipam_warnings(e2e, "lost"), "IPAM warns about the family")
            assert any(f"no IPv{missing[0]} pool" in m for m in msgs), msgs
            assert await _allocated(e2e, "lost", 1) is None
    finally:
        await ctl.close()
    assert not ctl.crashed


@SINGLE
async def test_lab_pod_of_the_lab_family_answers_and_etp_local_follows_it(e2e_stack: E2E) -> None:
    """`kubevip lab pod add` on a single-stack lab: one address of the lab's family, answering from the
    client; an externalTrafficPolicy Local Service's VIP goes to the pod's node."""
    e2e = e2e_stack
    (fam,) = e2e.families
    node = e2e.nodes[1].name
    pod = await asyncio.to_thread(podnet.add, e2e.cp, e2e.lab, "web-0", node, e2e.ns, {"app": "web"})
    try:
        address = pod.ipv4 if fam == 4 else pod.ipv6
        assert address is not None and (pod.ipv6 if fam == 4 else pod.ipv4) is None, pod
        got = await e2e.eventually(
            lambda: asyncio.to_thread(
                lambda: e2e.lab.run(e2e.lab.client.netns, probe_argv(address, 8080, 1.0)).stdout.strip()),
            f"the pod answers at {address}")
        assert got == "web-0"
        vip = e2e.vip(fam)
        await e2e.service("web", [vip], families=(f"IPv{fam}",), etp="Local")
        e2e.start_agents()
        assert await e2e.eventually(lambda: e2e.reach(vip), f"{vip} answers") == node
        assert await e2e.holders(vip) == {node}
    finally:
        await asyncio.to_thread(podnet.delete, e2e.cp, e2e.lab, "web-0", e2e.ns)


@pytest.fixture
async def gobgp(e2e_stack: E2E) -> AsyncIterator[LabBgp]:
    _require_daemon("gobgpd")
    state = e2e_stack.fleet.log_dir / "bgp"
    state.mkdir()
    router = LabBgp(e2e_stack.lab, state)
    try:
        await asyncio.to_thread(router.up, "gobgpd")
        yield router
    finally:
        await asyncio.to_thread(router.down)


@SINGLE  # dual: tests/e2e/test_bgp_agent.py (three daemons)
async def test_bgp_announces_the_lab_families(e2e_stack: E2E, gobgp: LabBgp) -> None:
    e2e = e2e_stack
    vips = [e2e.vip(f) for f in e2e.families]
    fams, policy = _families(e2e)
    await e2e.service("routed", vips, families=fams, policy=policy)
    e2e.start_agents(**gobgp.agent_env(), **TIMINGS)
    reader = gobgp.reader()
    assert reader is not None
    by_name = {n.name: n for n in e2e.nodes}

    async def rib() -> dict[ipaddress.IPv4Network | ipaddress.IPv6Network, frozenset[IPAddress]] | None:
        got = {}
        for f in e2e.families:
            try:
                got.update(await reader.rib(f))
            except Exception:  # the daemon's CLI may be busy starting
                return None
        return got if len(got) == len(vips) and all(len(h) == 1 for h in got.values()) else None

    got = await e2e.eventually(rib, "the router learns one route per VIP")
    for v in vips:
        (hop,) = got[ipaddress.ip_network(v)]
        assert hop.version == v.version, f"{v} has a next hop of another family: {hop}"
        assert hop in {by_name[n].ipv4 if v.version == 4 else by_name[n].ipv6 for n in by_name}, hop


async def _is(value: object, expected: object) -> bool:
    return await value == expected  # type: ignore[misc]


async def _lists(value: Awaitable[list[tuple[str, str | None]]], item: tuple[str, str]) -> bool:
    return item in await value


async def _reach_other(e2e: E2E, vip: IPAddress, old: str) -> str | None:
    got = await e2e.reach(vip, wait=0.3)
    return got if got and got != old else None


async def _warnings(e2e: E2E, name: str, reason: str) -> list[tuple[str, str, str]]:
    return [e for e in await e2e.events(name) if e[0] == "Warning" and e[1] == reason]


async def _ipam_warnings(e2e: E2E, name: str) -> list[str]:
    evs = await e2e.core.list_namespaced_event(e2e.ns)
    return [e.message for e in evs.items if e.involved_object.name == name and e.type == "Warning"]


async def _allocated(e2e: E2E, name: str, n: int) -> tuple[IPAddress, ...] | None:
    svc = await e2e.core.read_namespaced_service(name, e2e.ns)
    text = (svc.metadata.annotations or {}).get(ANNOTATION_IPS) or ""
    addrs = tuple(ipaddress.ip_address(x) for x in text.split(",") if x)
    return addrs if len(addrs) == n else None
