"""What the agent publishes after each pass: the report Lease's list of held VIPs (`Agent._publish`),
handed over only when it changes, a VIP's `since` kept while other VIPs come and go; and the gauges."""

from __future__ import annotations

import ipaddress

from kubevip.core.parse import service_from_dict
from kubevip.core.report import HeldVip
from kubevip.core.world import SERVICE, apply_event
from tests.unit.agent.test_side_effect_order import Events, _agent
from tests.unit.objects import service


class RecordingPresence:
    def __init__(self) -> None:
        self.updates: list[tuple[HeldVip, ...]] = []

    def update(self, vips: tuple[HeldVip, ...]) -> None:
        self.updates.append(vips)


def _svc(name: str, v4: str, v6: str) -> dict[str, object]:
    return service(name, f"{v4},{v6}", families=("IPv4", "IPv6"), policy="PreferDualStack")


async def test_published_on_change_only_and_since_survives_other_vips() -> None:
    events: Events = []
    agent = _agent(events)
    presence = RecordingPresence()
    agent.presence = presence  # type: ignore[assignment]
    web = service_from_dict(_svc("web", "192.0.2.10", "2001:db8::10"))
    agent.touched(apply_event(agent.world, SERVICE, False, web))
    agent.leadership.set_units({"default/web": None})
    await agent.converge()
    assert len(presence.updates) == 1
    first = {v.address: v for v in presence.updates[-1]}
    assert set(first) == {ipaddress.ip_address("192.0.2.10"), ipaddress.ip_address("2001:db8::10")}
    assert all(v.unit == "default/kubevip-web" and v.interface == "eth0" and v.since for v in first.values())

    await agent.converge()  # nothing changed: nothing handed over
    assert len(presence.updates) == 1

    api = service_from_dict(_svc("api", "192.0.2.20", "2001:db8::20"))
    agent.touched(apply_event(agent.world, SERVICE, False, api))
    agent.leadership.set_units({"default/web": None, "default/api": None})
    await agent.converge()
    assert len(presence.updates) == 2
    second = {v.address: v for v in presence.updates[-1]}
    assert len(second) == 4
    for addr, v in first.items():
        assert second[addr] is v, "an unchanged VIP keeps its entry and its since"

    agent.touched(apply_event(agent.world, SERVICE, True, web))
    agent.leadership.set_units({"default/api": None})
    await agent.converge()
    third = {v.address: v for v in presence.updates[-1]}
    assert set(third) == {ipaddress.ip_address("192.0.2.20"), ipaddress.ip_address("2001:db8::20")}
    assert all(third[a] is second[a] for a in third)


async def test_gauges_follow_every_change_of_the_held_vips() -> None:
    agent = _agent([])

    def announced() -> tuple[float, float]:
        g = agent.metrics.announced_vips
        return g.labels("IPv4")._value.get(), g.labels("IPv6")._value.get()

    web = service_from_dict(_svc("web", "192.0.2.10", "2001:db8::10"))
    api = service_from_dict(service("api", "192.0.2.20", families=("IPv4",), policy="SingleStack"))
    agent.touched(apply_event(agent.world, SERVICE, False, web))
    agent.leadership.set_units({"default/web": None})
    await agent.converge()
    assert announced() == (1, 1)
    agent.touched(apply_event(agent.world, SERVICE, False, api))
    agent.leadership.set_units({"default/web": None, "default/api": None})
    await agent.converge()
    assert announced() == (2, 1)
    assert agent.metrics.active_services.labels("default")._value.get() == 2
    agent.touched(apply_event(agent.world, SERVICE, True, web))
    agent.leadership.set_units({"default/api": None})
    await agent.converge()
    assert announced() == (1, 0)
