"""The agent's kernel-lifetime rounds (`Agent.extend_lifetimes`) over a kernel whose rounds are slow: the
lifetimes are computed for the instant the round is expected to end (the last round's duration), so a
round as slow as the last is not sent twice."""

from __future__ import annotations

import time
from collections.abc import Mapping

from kubevip.agent.reconciler import Agent
from kubevip.config import AgentConfig
from kubevip.core.parse import service_from_dict
from kubevip.core.rows import Row
from kubevip.core.views import IPFamily
from kubevip.core.world import SERVICE, apply_event
from kubevip.election.lifetime import budget
from tests.unit.agent.test_side_effect_order import Events, RecordingVips
from tests.unit.objects import service

ROUND = 0.3  # seconds a fake kernel round takes


class SlowKernel(RecordingVips):
    def __init__(self, events: Events) -> None:
        super().__init__(events)
        self.rounds: list[dict[Row, int | None]] = []

    def extend(self, lifetimes: Mapping[Row, int | None], not_after: float | None = None) -> float:
        self.rounds.append(dict(lifetimes))
        time.sleep(ROUND)  # the kernel's round itself, in the worker thread
        return time.monotonic()


async def test_a_round_as_slow_as_the_last_is_sent_once() -> None:
    cfg = AgentConfig.load({
        "vip_nodename": "n1", "svc_enable": "true", "vip_interface": "eth0", "vip_arp": "true",
        "vip_leaderelection": "false", "vip_leaseduration": "5", "vip_renewdeadline": "3",
        "vip_retryperiod": "1",
    })
    kernel = SlowKernel([])
    agent = Agent(cfg, None, vips=kernel)
    agent._ifaces = dict.fromkeys(IPFamily, "eth0")
    svc = service("web", "192.0.2.10,2001:db8::10", families=("IPv4", "IPv6"), policy="PreferDualStack")
    agent.touched(apply_event(agent.world, SERVICE, False, service_from_dict(svc)))
    agent.leadership.set_units({"default/web": None})
    await agent.converge()
    assert len(agent.held) == 2
    t = cfg.election.timings
    agent.lifetimes = True
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
