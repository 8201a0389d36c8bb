"""Lifecycle end to end: ETP Local follows the pod, SIGKILL failover, deletion, restart without flap or
stale address, and a broken Service next to a healthy one."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kubevip.election.scalable import EPOCH_ANNOTATION, claim_lease_name, node_lease_name
from kubevip.lab import pods
from kubevip.net.namespace import Netns
from tests.e2e.conftest import E2E, IPAddress

pytestmark = pytest.mark.e2e


async def test_local_policy_follows_the_pod(e2e: E2E) -> None:
    v4, v6 = e2e.vip(4), e2e.vip(6)
    n1, n2, _ = (n.name for n in e2e.nodes)
    await e2e.pod("web", n1, name="web-0")
    await e2e.service("web", [v4, v6], families=("IPv4", "IPv6"), policy="PreferDualStack", etp="Local")
    e2e.start_agents()
    for vip in (v4, v6):
        assert await e2e.eventually(lambda vip=vip: _on(e2e, vip, {n1}), f"{vip} on {n1} (pod there)")
        assert await e2e.eventually(lambda vip=vip: e2e.reach(vip), f"{vip} answers") == n1
    await pods.move_pod(e2e.api, e2e.ns, "web-0", n2)
    for vip in (v4, v6):
        assert await e2e.eventually(lambda vip=vip: _on(e2e, vip, {n2}), f"{vip} follows the pod to {n2}")
        assert await e2e.eventually(lambda vip=vip: _reach_is(e2e, vip, n2), f"{vip} answered by {n2}")
    assert await e2e.eventually(lambda: _vip_host_is(e2e, "web", n2), "vipHost follows")


async def test_sigkill_of_announcing_agent_client_recovers(e2e: E2E) -> None:
    vip = e2e.vip(4)
    await e2e.service("ha", [vip])
    e2e.start_agents()
    first = await e2e.eventually(lambda: e2e.reach(vip), "VIP answers")
    async with e2e.watch(vip):  # never two holders during the failover
        second = await _sigkill_failover(e2e, vip, first)
    assert await e2e.eventually(lambda: _vip_host_is(e2e, "ha", second), "vipHost names the new node")


async def _sigkill_failover(e2e: E2E, vip: IPAddress, first: str) -> str:
    e2e.fleet.agents[first].signal(signal.SIGKILL)
    # The killed agent's address stays in its namespace (nobody withdrew it); take the node off the
    # segment's view by removing it, as a crashed node would vanish, so the client can only recover by
    # following the takeover announcement.
    e2e.fleet.agents[first].kill()
    await asyncio.to_thread(_drop_owned, e2e, first)
    second = await e2e.eventually(lambda: _reach_other(e2e, vip, first), "client reaches another node")
    assert await e2e.holders(vip) == {second}, "exactly the answering node holds the VIP"
    return second


async def test_service_deletion_leaves_no_address(e2e: E2E) -> None:
    v4, v6 = e2e.vip(4), e2e.vip(6)
    await e2e.service("gone", [v4, v6], families=("IPv4", "IPv6"), policy="PreferDualStack")
    e2e.start_agents()
    await e2e.eventually(lambda: e2e.reach(v4), "IPv4 answers")
    await e2e.eventually(lambda: e2e.reach(v6), "IPv6 answers")
    await e2e.delete_service("gone")
    await e2e.eventually(lambda: _nowhere(e2e, v4, v6), "no address left on any node")


async def test_agent_restart_no_flap_no_stale(e2e: E2E) -> None:
    keep, stale = e2e.vip(4), e2e.vip(4)
    await e2e.service("keep", [keep])
    await e2e.service("stale", [stale])
    e2e.start_agents()
    await e2e.eventually(lambda: e2e.reach(keep), "keep answers")
    await e2e.eventually(lambda: e2e.reach(stale), "stale answers")
    stale_node = next(iter(await e2e.eventually(lambda: e2e.holders(stale), "stale held")))
    keep_node = next(iter(await e2e.eventually(lambda: e2e.holders(keep), "keep held")))
    quiet = next(n.name for n in e2e.nodes if n.name != keep_node)

    # 1. Restarting an agent that does not announce `keep` leaves `keep` alone.
    async with e2e.watch(keep, stale) as w:
        e2e.fleet.agents[quiet].stop()
        restarted = time.time()
        e2e.fleet.start()
        await e2e.eventually(lambda: _live_again(e2e, quiet, restarted), f"{quiet} live again")
        await e2e.eventually(lambda: _claimed(e2e, f"vip:{keep}", keep_node), "keep still claimed")
    assert w.holders(keep) == [frozenset({keep_node})], (
        f"keep moved or vanished: {w.holders(keep)}\n{e2e.fleet.logs(80)}"
    )

    # 2. Crash every agent, delete a Service while none runs, add a foreign address, start again.
    for ag in e2e.fleet.agents.values():
        ag.kill()
    await e2e.delete_service("stale")
    await asyncio.to_thread(_add_foreign, e2e, stale_node)
    async with e2e.watch(keep, stale) as w:
        e2e.fleet.start()
        await e2e.eventually(lambda: _nowhere(e2e, stale), "the stale VIP is removed")
        # Right after the crash the old claim still looks valid (its holder's liveness Lease has not
        # expired yet): wait for a claim whose holder also holds the address, and only that node.
        final = await e2e.eventually(
            lambda: _claimed_and_on(e2e, keep), "keep claimed again, on its holder only"
        )
        await e2e.eventually(lambda: _reach_is(e2e, keep, final), "keep answers")
    # While every agent is dead the kernel withdraws `keep` by itself (its lifetime ran out: fencing
    # without an agent, docs/election.md); a gap is expected, a move to another node and back is not.
    held = [k for k in w.holders(keep) if k]
    runs = [k for i, k in enumerate(held) if i == 0 or k != held[i - 1]]
    holders_in_order = [next(iter(r)) for r in runs if len(r) == 1]
    assert len(holders_in_order) == len(set(holders_in_order)), f"keep flapped: {runs}"
    assert await asyncio.to_thread(_has_foreign, e2e, stale_node), "a foreign address was removed"


async def test_a_restarted_agent_adopts_its_vips_without_a_gap(e2e: E2E) -> None:
    """Start-up adoption through `Agent.start()`: an agent SIGKILLed and started again on a node that still
    carries its VIPs (its previous run's, with our IFA_PROTO) keeps them while the election settles and
    once it holds them again: no RTM_DELADDR for them in between (a netlink monitor in the node's namespace
    sees every address event: none for them, not even a re-add). It does not adopt an address it does not
    own: a pool address added by hand, which no Service wants, stays where it is. Only this node runs an
    agent (nobody else may take the units meanwhile), and kernel lifetimes are off: with them a crashed
    agent's VIPs expire before its restarted process may hold them again (docs/election.md)."""
    v4, v6 = e2e.vip(4), e2e.vip(6)
    foreign = e2e.vip(4)
    stale = e2e.vip(4)  # its Service is deleted while the agent is down: adopted, then dropped
    node = e2e.nodes[0]
    await e2e.service("adopt", [v4, v6], families=("IPv4", "IPv6"), policy="PreferDualStack")
    await e2e.service("gone", [stale])
    e2e.fleet.extra_env.update(vip_kernel_lifetime="false")
    e2e.fleet.start((node,))
    for v in (v4, v6, stale):
        await e2e.eventually(lambda v=v: _claimed_and_on(e2e, v), f"{v} claimed and on {node.name}")
    monitor = await asyncio.create_subprocess_exec(
        "ip", "-n", node.netns, "-o", "monitor", "address", stdout=asyncio.subprocess.PIPE
    )
    events: list[str] = []

    async def read() -> None:
        assert monitor.stdout is not None
        while line := await monitor.stdout.readline():
            events.append(line.decode().strip())

    reader = asyncio.create_task(read())
    added = False
    try:
        # The foreign address also proves the monitor listens before the agent is killed.
        await asyncio.to_thread(
            subprocess.run, ["ip", "-n", node.netns, "addr", "add", f"{foreign}/32", "dev", node.interface],
            check=True,
        )
        added = True
        replace = ["ip", "-n", node.netns, "addr", "replace", f"{foreign}/32", "dev", node.interface]

        async def heard() -> bool:
            # The monitor may subscribe after the add: a replace of the same address is an RTM_NEWADDR
            # too, so repeat it until the monitor has printed one (proof that it listens).
            if any(f" {foreign}/32 " in e for e in events):
                return True
            await asyncio.to_thread(subprocess.run, replace, check=True)
            return False

        await e2e.eventually(heard, "the monitor listens")
        epoch = await _epoch(e2e, node.name)
        async with e2e.watch(v4, v6, foreign) as w:
            e2e.fleet.agents[node.name].kill()
            killed = len(events)
            await e2e.core.delete_namespaced_service("gone", e2e.ns)
            e2e.fleet.start((node,))
            # The new process's own epoch (its liveness Lease taken anew), not the old one's Lease.
            await e2e.eventually(lambda: _epoch_after(e2e, node.name, epoch), f"{node.name} in a new epoch")
            # Held again by the new process (claims in its new epoch), and announced: adoption is over.
            for v in (v4, v6):
                await e2e.eventually(lambda v=v: _claimed(e2e, f"vip:{v}", node.name), f"{v} claimed again")
                await e2e.eventually(lambda v=v: _reach_is(e2e, v, node.name), f"{v} answers")
            owned = (await e2e.owned())[node.name]
            # The previous run's address that nothing wants any more: known as ours only by adoption, so
            # the new process removes it (an agent that adopted nothing would leave it there for ever;
            # the checks above cannot tell, as re-adding an existing address emits no event).
            await e2e.eventually(lambda: _nowhere(e2e, stale), f"{stale} removed after adoption")
        # Not removed, and not even re-added (an add of an existing address is an RTM_NEWADDR too): the
        # new process knows them as its own from the kernel, so it has nothing to change.
        touched = [e for e in events[killed:] if any(f" {v}/" in e for v in (v4, v6))]
        assert not touched, f"the restart removed or re-added a VIP: {touched}\n{e2e.fleet.logs(60)}"
        for v in (v4, v6):
            assert w.holders(v) == [frozenset({node.name})], f"{v}: {w.holders(v)}"
            assert v in owned, f"{v} is no longer ours"
        assert w.holders(foreign) == [frozenset({node.name})], "the foreign address was touched"
        assert foreign not in owned, "the agent adopted an address it does not own"
    finally:
        monitor.terminate()
        await monitor.wait()
        await reader
        if added:
            drop = ["ip", "-n", node.netns, "addr", "del", f"{foreign}/32", "dev", node.interface]
            await asyncio.to_thread(subprocess.run, drop, check=False)


async def test_broken_annotation_next_to_healthy(e2e: E2E) -> None:
    good = e2e.vip(4)
    await e2e.service("healthy", [good])
    e2e.start_agents()
    node = await e2e.eventually(lambda: e2e.reach(good), "healthy answers")
    stop = asyncio.Event()
    answers: list[str | None] = []

    async def probe() -> None:
        while not stop.is_set():
            answers.append(await e2e.reach(good, wait=0.5))
            await asyncio.sleep(0.02)

    prober = asyncio.create_task(probe())
    try:
        await e2e.service("broken", "a.example, 300.1.2.3,fe80::1%eth0,, ::1")
        events = await e2e.eventually(lambda: _warnings(e2e, "broken", 5), "a Warning per bad address")
        assert sorted(r for _, r, _ in events) == [
            "dns-name",
            "loopback",
            "no-vip",
            "not-an-ip",
            "zone-suffix",
        ]
        # Editing the broken one again must not disturb the healthy one either.
        await e2e.core.patch_namespaced_service(
            "broken", e2e.ns, {"metadata": {"annotations": {"kube-vip.io/loadbalancerIPs": "400.0.0.1"}}}
        )
        await e2e.eventually(lambda: _warnings(e2e, "broken", 6), "a Warning for the new bad value")
    finally:
        stop.set()
        await prober
    assert answers and set(answers) == {node}, f"the healthy Service noticed: {set(answers)}"
    assert await e2e.ingress("broken") == []


# -- helpers ---------------------------------------------------------------------------------------------


async def _on(e2e: E2E, vip: object, nodes: set[str]) -> bool:
    return await e2e.holders(vip) == nodes  # type: ignore[arg-type]


async def _reach_is(e2e: E2E, vip: object, node: str) -> bool:
    return await e2e.reach(vip) == node  # type: ignore[arg-type]


async def _reach_other(e2e: E2E, vip: object, old: str) -> str | None:
    got = await e2e.reach(vip, wait=0.3)  # type: ignore[arg-type]
    return got if got and got != old else None


async def _vip_host_is(e2e: E2E, name: str, node: str) -> bool:
    return await e2e.vip_host(name) == node


async def _nowhere(e2e: E2E, *vips: object) -> bool:
    owned = await e2e.owned()
    return not any(v in addrs for addrs in owned.values() for v in vips)


async def _warnings(e2e: E2E, name: str, at_least: int) -> list[tuple[str, str, str]] | None:
    w = [e for e in await e2e.events(name) if e[0] == "Warning"]
    return w if len(w) >= at_least else None


async def _live_again(e2e: E2E, node: str, since: float) -> bool:
    """The node's liveness Lease was (re)acquired after `since` (its new agent takes part again)."""
    try:
        live = await client.CoordinationV1Api(e2e.api).read_namespaced_lease(node_lease_name(node), e2e.ns)
    except ApiException:
        return False
    acquired = live.spec.acquire_time
    return bool(
        live.spec.holder_identity == node and acquired is not None and acquired.timestamp() >= since - 1
    )


async def _epoch(e2e: E2E, node: str) -> int:
    live = await client.CoordinationV1Api(e2e.api).read_namespaced_lease(node_lease_name(node), e2e.ns)
    assert live.spec.holder_identity == node
    return int(live.spec.lease_transitions or 0)


async def _epoch_after(e2e: E2E, node: str, old: int) -> bool:
    try:
        return await _epoch(e2e, node) > old
    except (ApiException, AssertionError):
        return False


async def _claimed_and_on(e2e: E2E, vip: object) -> str | None:
    holder = await _single_claim(e2e, f"vip:{vip}")
    return holder if holder is not None and await _on(e2e, vip, {holder}) else None


async def _claimed(e2e: E2E, unit: str, node: str) -> bool:
    return await _single_claim(e2e, unit) == node


async def _single_claim(e2e: E2E, unit: str) -> str | None:
    """The holder of the unit's claim, if the claim is valid (made in the holder's current epoch)."""
    leases = client.CoordinationV1Api(e2e.api)
    try:
        claim = await leases.read_namespaced_lease(claim_lease_name(unit), e2e.ns)
        holder = claim.spec.holder_identity
        if not holder:
            return None
        live = await leases.read_namespaced_lease(node_lease_name(holder), e2e.ns)
    except ApiException:
        return None
    epoch = (claim.metadata.annotations or {}).get(EPOCH_ANNOTATION)
    ok = live.spec.holder_identity == holder and epoch == str(live.spec.lease_transitions or 0)
    return holder if ok else None


def _node(e2e: E2E, name: str) -> tuple[str, str]:
    n = next(n for n in e2e.nodes if n.name == name)
    return n.netns, n.interface


def _drop_owned(e2e: E2E, name: str) -> None:
    from kubevip.net.addresses import AddressManager

    netns, ifname = _node(e2e, name)
    AddressManager(ifname, Netns(netns)).cleanup_stale([])


FOREIGN = "198.18.255.77/32"


def _add_foreign(e2e: E2E, name: str) -> None:
    netns, ifname = _node(e2e, name)
    subprocess.run(["ip", "-n", netns, "addr", "add", FOREIGN, "dev", ifname], check=True)


def _has_foreign(e2e: E2E, name: str) -> bool:
    netns, ifname = _node(e2e, name)
    out = subprocess.run(
        ["ip", "-n", netns, "-o", "addr", "show", "dev", ifname], capture_output=True, text=True, check=True
    ).stdout
    found = FOREIGN.split("/")[0] in out
    subprocess.run(["ip", "-n", netns, "addr", "del", FOREIGN, "dev", ifname], check=False)
    return found
