"""Fencing that needs no running agent: the holder's agent is SIGKILLed, or SIGSTOPped (a stalled event
loop), on a node that stays up. The VIPs leave the old node by themselves (kernel lifetimes, nobody
removes them here), the shared node watcher (`E2E.watch`) never sees two nodes holding one, and a peer
takes over. The measured times (how long the old node kept the VIPs, the client's longest gap) are
printed for docs/election.md; they are not asserted (timing goals live in bench/)."""

from __future__ import annotations

import asyncio
import datetime
import json
import secrets
import signal
import time
from urllib.parse import urlsplit

import pytest
from kubernetes_asyncio import client

from kubevip.election.scalable import node_lease_name
from tests.e2e.conftest import E2E, IPAddress
from tests.fixtures.prereqs import require_binary

pytestmark = pytest.mark.e2e


async def _client_gaps(e2e: E2E, vips: tuple[IPAddress, ...], stop: asyncio.Event) -> dict[str, float]:
    """The longest time per VIP between two answers of the client's probes (0.05 s apart)."""
    last: dict[IPAddress, float] = {v: time.monotonic() for v in vips}
    gap: dict[IPAddress, float] = dict.fromkeys(vips, 0.0)
    while not stop.is_set():
        answers = await asyncio.gather(*(e2e.reach(v, wait=0.3) for v in vips))
        now = time.monotonic()
        for v, who in zip(vips, answers, strict=True):
            if who is not None:
                gap[v] = max(gap[v], now - last[v])
                last[v] = now
        await asyncio.sleep(0.05)
    return {str(v): round(g, 3) for v, g in gap.items()}


@pytest.mark.parametrize(
    ("mode", "sig"),
    [("scalable", signal.SIGKILL), ("scalable", signal.SIGSTOP), ("lease", signal.SIGKILL)],
    ids=["scalable-SIGKILL", "scalable-SIGSTOP", "lease-SIGKILL"],
)
async def test_the_vip_leaves_a_dead_or_stalled_agents_node_by_itself(
    e2e: E2E, mode: str, sig: signal.Signals
) -> None:
    v4, v6 = e2e.vip(4), e2e.vip(6)
    vips = (v4, v6)
    await e2e.service("fence", [v4, v6], families=("IPv4", "IPv6"), policy="PreferDualStack")
    e2e.start_agents(vip_electionmode=mode)
    # The signalled node is the IPv4 VIP's holder; in scalable mode each VIP is its own unit, so the IPv6
    # VIP may live elsewhere (then it must simply stay single-held throughout).
    first = await e2e.eventually(lambda: e2e.reach(v4), "IPv4 VIP answers")
    await e2e.eventually(lambda: e2e.reach(v6), "IPv6 VIP answers")

    watch = e2e.watch(*vips)
    stop_client = asyncio.Event()
    client = asyncio.create_task(_client_gaps(e2e, vips, stop_client))
    agent = e2e.fleet.agents[first]
    try:
        async with watch as poll:
            await asyncio.sleep(1.0)
            killed = time.monotonic()
            agent.signal(sig)

            async def moved() -> dict[IPAddress, str] | None:
                """Each VIP on exactly one peer, which answers for it (in scalable mode each VIP is its own
                unit, so the two may go to different peers)."""
                out: dict[IPAddress, str] = {}
                for v in vips:
                    h = await e2e.holders(v)
                    if len(h) != 1 or first in h:
                        return None
                    (out[v],) = h
                    if await e2e.reach(v) != out[v]:
                        return None
                return out

            second = await e2e.eventually(moved, f"both VIPs leave {first} by themselves and move to a peer")
            await e2e.eventually(
                lambda: all(first not in s.get(v, ()) for _, s in poll.samples[-3:] for v in vips),
                f"{first} holds no VIP (every namespace polled)",
            )
            if sig == signal.SIGSTOP:
                # The stalled agent, resumed, must not bring the VIP back: it lost its Lease and fences
                # (watched too: a moment with the VIP back on the old node next to the new one fails).
                agent.signal(signal.SIGCONT)
                resumed = time.monotonic()
                await e2e.eventually(lambda: e2e.reach(v4), "the VIP still answers after SIGCONT")
                for _ in range(20):
                    holders = {v: await e2e.holders(v) for v in vips}
                    assert all(h == {second[v]} for v, h in holders.items()), f"after SIGCONT: {holders}"
                    await asyncio.sleep(0.1)
                assert all(watch.holders(v, resumed) == [frozenset({second[v]})] for v in vips), (
                    {v: watch.holders(v, resumed) for v in vips}
                )
    finally:
        stop_client.set()
        gaps = await client
        if sig == signal.SIGSTOP:
            agent.signal(signal.SIGCONT)
    kept = watch.left(first, killed)
    print(json.dumps({
        "mode": mode, "signal": sig.name, "old_node_kept_vips_s": None if kept is None else round(kept, 3),
        "client_longest_gap_s": gaps, "new_holders": {str(v): n for v, n in second.items()},
    }))


async def test_a_black_holed_agent_gives_its_vips_up_and_takes_none_back(e2e: E2E) -> None:
    """The path between the holder's agent and the API server turns into a black hole (not an error: every
    packet dropped in the node's namespace, so requests hang and open connections stay open; the agent
    keeps running). Its VIPs must leave it before a peer, whose API path works, takes them over; when the
    API path returns, nothing moves back (the old node is live again in the election and still holds
    nothing). nftables in the node's namespace rather than the tests' fault proxy: this cuts the running
    agent's own TLS connections to the real API server as they are, without a new kubeconfig or restart."""
    require_binary("nft")
    v4, v6 = e2e.vip(4), e2e.vip(6)
    vips = (v4, v6)
    await e2e.service("cut", [v4, v6], families=("IPv4", "IPv6"), policy="PreferDualStack")
    e2e.start_agents()  # scalable mode, the default
    first = await e2e.eventually(lambda: e2e.reach(v4), "IPv4 VIP answers")
    await e2e.eventually(lambda: e2e.reach(v6), "IPv6 VIP answers")
    node = next(n for n in e2e.nodes if n.name == first)
    api = urlsplit(e2e.cp.url_via(e2e.lab.api_address))
    match = f"{'ip' if e2e.lab.api_address.version == 4 else 'ip6'}"
    table = f"kubevip_blackhole_{secrets.token_hex(3)}"
    rules = (
        f"add table inet {table}; "
        f"add chain inet {table} out {{ type filter hook output priority -300; }}; "
        f"add chain inet {table} in {{ type filter hook input priority -300; }}; "
        f"add rule inet {table} out {match} daddr {api.hostname} tcp dport {api.port} drop; "
        f"add rule inet {table} in {match} saddr {api.hostname} tcp sport {api.port} drop"
    )
    # In scalable mode each VIP is its own unit: the IPv6 one may live elsewhere (then it stays put).
    mine = [v for v in vips if first in await e2e.holders(v)]
    cut = restored = False
    async with e2e.watch(*vips) as w:
        try:
            await e2e.lab.run_async(node.netns, ["nft", rules])
            cut = True
            at = time.monotonic()
            # Every VIP leaves the cut-off node (its agent fences: no renewal is answered), and each is
            # then held by exactly one peer that answers for it.
            await e2e.eventually(lambda: _left(e2e, first, vips), f"{first} gives its VIPs up (black hole)")
            second = await e2e.eventually(lambda: _moved(e2e, vips, first), "a peer takes each VIP over")
            for v in mine:
                took = w.first_held(v, second[v], at)
                left = w.left(first, at)
                assert took is not None and left is not None and at + left <= took, (
                    f"{v}: a peer took it before {first} gave it up: {w.holders(v, at)}"
                )
            await e2e.lab.run_async(node.netns, ["nft", f"delete table inet {table}"])
            restored = True
            back = time.monotonic()
            wall = datetime.datetime.now(datetime.UTC)
            # The old node is live in the election again (its liveness Lease renewed by it, after the
            # API path returned, for more than a lease duration) and has taken nothing back.
            renewals = _Renewals(e2e, first, wall)
            await e2e.eventually(lambda: renewals.at_least(9), f"{first} renews again")
            for v in vips:
                assert w.holders(v, back) == [frozenset({second[v]})], (
                    f"{v} moved after the API returned: {w.holders(v, back)}\n{e2e.fleet.logs(60)}"
                )
        finally:
            if cut and not restored:
                await e2e.lab.run_async(node.netns, ["nft", f"delete table inet {table}"], check=False)
    left = w.left(first, at)
    print(json.dumps({"black_hole_old_node_kept_vips_s": None if left is None else round(left, 3),
                      "new_holders": {str(v): n for v, n in second.items()}}))


async def _left(e2e: E2E, node: str, vips: tuple[IPAddress, ...]) -> bool:
    on = (await e2e.owned())[node]
    return not any(v in on for v in vips)


async def _moved(e2e: E2E, vips: tuple[IPAddress, ...], old: str) -> dict[IPAddress, str] | None:
    out: dict[IPAddress, str] = {}
    for v in vips:
        h = await e2e.holders(v)
        if len(h) != 1 or old in h:
            return None
        (out[v],) = h
        if await e2e.reach(v) != out[v]:
            return None
    return out


class _Renewals:
    """`node`'s own renewals of its liveness Lease after `since` (each seen as a new renewTime; a poll may
    miss some, which only waits longer)."""

    def __init__(self, e2e: E2E, node: str, since: datetime.datetime) -> None:
        self.e2e, self.node, self.since = e2e, node, since
        self.seen: set[datetime.datetime] = set()

    async def at_least(self, count: int) -> bool:
        api = client.CoordinationV1Api(self.e2e.api)
        lease = await api.read_namespaced_lease(node_lease_name(self.node), self.e2e.ns)
        renew = lease.spec.renew_time
        if lease.spec.holder_identity == self.node and renew is not None and renew > self.since:
            self.seen.add(renew)
        return len(self.seen) >= count


async def _dynamic(e2e: E2E, vips: list[IPAddress]) -> dict[str, bool | None]:
    """Per VIP: True when a node carries it with a kernel lifetime, False when permanent, None when no
    node has it (iproute2's view, an independent parser)."""
    out: dict[str, bool | None] = dict.fromkeys(map(str, vips))
    for n in e2e.nodes:
        shown = await e2e.lab.run_async(n.netns, ["ip", "-j", "addr", "show", "dev", n.interface])
        for link in json.loads(shown.stdout):
            for a in link.get("addr_info", []):
                if a["local"] in out:
                    out[a["local"]] = bool(a.get("dynamic"))
    return out


async def test_above_the_ipv6_limit_the_nodes_ipv6_vips_turn_permanent_and_back(e2e: E2E) -> None:
    """vip_kernel_lifetime_ipv6_limit (docs/election.md): past the limit every IPv6 VIP of the holder is
    rewritten permanent (an IPv6 change costs the kernel a walk of every IPv6 address) while its IPv4 VIP
    keeps its lifetime; back at the resume point (limit 2: one IPv6 VIP) they get lifetimes again."""
    v4, six = e2e.vip(4), [e2e.vip(6) for _ in range(3)]
    await e2e.service("lim0", [v4, six[0]], families=("IPv4", "IPv6"), policy="PreferDualStack")
    await e2e.service("lim1", [six[1]], families=("IPv6",))
    e2e.start_agents(vip_electionmode="lease", vip_kernel_lifetime_ipv6_limit="2")
    every = [v4, *six]

    async def state(want: dict[str, bool | None]) -> bool:
        return await _dynamic(e2e, every) == want

    a, b, c, d = map(str, every)
    await e2e.eventually(lambda: state({a: True, b: True, c: True, d: None}), "at the limit: all dynamic")
    holder = await e2e.holders(v4)
    await e2e.service("lim2", [six[2]], families=("IPv6",))
    await e2e.eventually(lambda: state({a: True, b: False, c: False, d: False}),
                         "above the limit: the IPv6 VIPs permanent, the IPv4 VIP dynamic")
    assert await e2e.holders(six[2]) == holder and await e2e.holders(v4) == holder
    await e2e.delete_service("lim2")
    await e2e.eventually(lambda: state({a: True, b: False, c: False, d: None}),
                         "between the resume point and the limit: still permanent (hysteresis)")
    await e2e.delete_service("lim1")
    await e2e.eventually(lambda: state({a: True, b: True, c: None, d: None}),
                         "at the resume point: lifetimes again")
