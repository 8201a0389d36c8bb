"""The agent's kernel-lifetime rounds (`Agent.extend_lifetimes`): over a kernel whose rounds are slow, the
lifetimes are computed for the instant the round is expected to end (the last round's duration), so a
round as slow as the last is not sent twice; the VIPs of each renewal get that renewal's lifetime, asked
for once per unit, and only VIPs that are due go to the kernel."""

from __future__ import annotations

import time
from collections.abc import Mapping

from kubevip.agent.reconciler import Agent
from kubevip.config import AgentConfig
from kubevip.core.parse import service_from_dict
from kubevip.core.rows import Row
from kubevip.core.views import IPFamily
from kubevip.core.world import SERVICE, apply_event
from kubevip.election.lifetime import budget, lifetime
from tests.unit.agent.test_side_effect_order import Events, RecordingVips
from tests.unit.objects import service

ROUND = 0.3  # seconds a fake kernel round takes


class SlowKernel(RecordingVips):
    def __init__(self, events: Events, took: float = ROUND) -> None:
        super().__init__(events)
        self.took = took
        self.rounds: list[dict[Row, int | None]] = []

    def extend(self, lifetimes: Mapping[Row, int | None], not_after: float | None = None) -> float:
        self.rounds.append(dict(lifetimes))
        time.sleep(self.took)  # the kernel's round itself, in the worker thread
        return time.monotonic()


CONFIG = {
    "vip_nodename": "n1", "svc_enable": "true", "vip_interface": "eth0", "vip_arp": "true",
    "vip_leaderelection": "false", "vip_leaseduration": "5", "vip_renewdeadline": "3", "vip_retryperiod": "1",
}


async def _holding(kernel: SlowKernel, *services: dict[str, object]) -> Agent:
    """An agent (no election: it holds every unit) that holds `services`' VIPs, lifetimes on."""
    agent = Agent(AgentConfig.load(CONFIG), None, vips=kernel)
    agent._ifaces = dict.fromkeys(IPFamily, "eth0")
    for svc in services:
        agent.touched(apply_event(agent.world, SERVICE, False, service_from_dict(svc)))
    await agent.converge()
    assert agent.snap is not None
    agent.leadership.set_units(dict.fromkeys({p.unit for p in agent.snap.plans}))
    await agent.converge()
    agent.lifetimes = True
    return agent


def _dual(name: str, v4: str, v6: str) -> dict[str, object]:
    return service(name, f"{v4},{v6}", families=("IPv4", "IPv6"), policy="PreferDualStack")


async def test_a_round_as_slow_as_the_last_is_sent_once() -> None:
    kernel = SlowKernel([])
    agent = await _holding(kernel, _dual("web", "192.0.2.10", "2001:db8::10"))
    assert len(agent.held) == 2
    t = agent.cfg.election.timings
    kernel.expires.clear()  # added permanent (lifetimes were off): unknown, so due
    # A renewal whose budget leaves a tenth of a second above a whole number: a 0.3 s round is late.
    now = time.monotonic()
    renewed = now - (budget(t, now, now) % 1) + 0.1
    agent.leadership.renewed_at = lambda unit: renewed  # type: ignore[method-assign]

    assert await agent.extend_lifetimes() == 2
    first = [set(r.values()) for r in kernel.rounds]
    assert len(first) == 2, "the first round knows no duration yet: late, and sent again"
    assert max(first[1]) < max(first[0])

    kernel.rounds.clear()
    kernel.expires.clear()  # due again
    renewed = time.monotonic() - (budget(t, now, now) % 1) + 0.1
    assert await agent.extend_lifetimes() == 2
    assert len(kernel.rounds) == 1, "computed for the round's expected end: not late, sent once"
    await agent.shutdown()


async def test_each_renewal_gives_its_own_vips_their_lifetime_asked_once_per_unit() -> None:
    """Two units renewed a second apart: each unit's VIPs get the lifetime of its own renewal (the VIPs of
    a Lease share one), the leadership is asked once per unit and round, not once per VIP."""
    kernel = SlowKernel([], took=0.0)
    agent = await _holding(kernel, _dual("web", "192.0.2.10", "2001:db8::10"), _dual("db", "192.0.2.20",
                                                                                       "2001:db8::20"))
    assert len(agent.held) == 4
    t = agent.cfg.election.timings
    now = time.monotonic()
    renewed = {"web": now, "db": now - 1.0}
    asked: list[str] = []

    def renewed_at(unit: str) -> float:
        asked.append(unit)
        return renewed[unit.rsplit("-", 1)[-1]]  # the unit of Service "web" is "default/kubevip-web"

    agent.leadership.renewed_at = renewed_at  # type: ignore[method-assign]
    kernel.expires.clear()  # unknown: every VIP is due
    assert await agent.extend_lifetimes() == 4
    assert sorted(u.rsplit("-", 1)[-1] for u in asked) == ["db", "web"]
    (sent,) = kernel.rounds
    by_ip = {str(r.address): seconds for r, seconds in sent.items()}
    after = time.monotonic()
    for unit, ips in (("web", ("192.0.2.10", "2001:db8::10")), ("db", ("192.0.2.20", "2001:db8::20"))):
        # Computed between `now` and `after` (for the round's expected end): within that range's bounds.
        earliest, latest = lifetime(t, renewed[unit], after).seconds, lifetime(t, renewed[unit], now).seconds
        assert {by_ip[ip] for ip in ips} <= set(range(earliest, latest + 1)), (unit, by_ip)
        assert by_ip[ips[0]] == by_ip[ips[1]], "one renewal, one lifetime"
    assert by_ip["192.0.2.10"] > by_ip["192.0.2.20"], "the older renewal allows less"


async def test_only_vips_that_are_due_are_sent() -> None:
    """A VIP whose kernel lifetime has more than half left is not rewritten; one whose lifetime is unknown
    is, and a VIP whose unit has no renewal (not held by a Lease) never is."""
    kernel = SlowKernel([], took=0.0)
    agent = await _holding(kernel, _dual("web", "192.0.2.10", "2001:db8::10"), _dual("db", "192.0.2.20",
                                                                                       "2001:db8::20"),
                           _dual("cache", "192.0.2.30", "2001:db8::30"))
    now = time.monotonic()
    agent.leadership.renewed_at = (  # type: ignore[method-assign]
        lambda unit: None if unit.endswith("cache") else now
    )
    kernel.expires.clear()
    for r in agent.held:
        if str(r.address) in ("192.0.2.10", "2001:db8::10"):
            kernel.expires[r] = now + 60.0  # far from due
    assert await agent.extend_lifetimes() == 2
    (sent,) = kernel.rounds
    assert sorted(str(r.address) for r in sent) == ["192.0.2.20", "2001:db8::20"]


async def test_a_late_round_is_sent_again_on_the_latest_renewal() -> None:
    """Renewals go on while a slow round runs: the retry of a late round computes its lifetimes from the
    renewal accepted meanwhile, not from the one the round started on (which under load was often past
    its deadline by the retry, so nothing was sent and the too-long lifetimes stayed)."""
    kernel = SlowKernel([])
    agent = await _holding(kernel, _dual("web", "192.0.2.10", "2001:db8::10"))
    t = agent.cfg.election.timings
    now = time.monotonic()
    first = now - (budget(t, now, now) % 1) + 0.1  # a tenth above a whole second: a 0.3 s round is late
    renewals = [first]
    agent.leadership.renewed_at = lambda unit: renewals[-1]  # type: ignore[method-assign]
    kernel.expires.clear()

    def extend(lifetimes: Mapping[Row, int | None], not_after: float | None = None) -> float:
        kernel.rounds.append(dict(lifetimes))
        time.sleep(ROUND)
        renewals.append(first + 1.0)  # a renewal accepted while the round ran
        return time.monotonic()

    kernel.extend = extend  # type: ignore[method-assign]
    assert await agent.extend_lifetimes() == 2
    assert len(kernel.rounds) == 2
    before, after = (max(v for v in r.values() if v is not None) for r in kernel.rounds)
    # On the round's own renewal the retry would be a second shorter than the first attempt (the test
    # above); on the renewal a second later it loses nothing.
    assert after >= before, (before, after)
    await agent.shutdown()
