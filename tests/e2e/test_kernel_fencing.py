"""Fencing that needs no running agent: the holder's agent is SIGKILLed, or SIGSTOPped (a stalled event
loop), on a node that stays up. The VIPs leave the old node by themselves (kernel lifetimes, nobody
removes them here), the shared node watcher (`E2E.watch`) never sees two nodes holding one, and a peer
takes over. The measured times (how long the old node kept the VIPs, the client's longest gap) are
printed for docs/election.md; they are not asserted (timing goals live in bench/)."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest

from tests.e2e.conftest import E2E, IPAddress

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
