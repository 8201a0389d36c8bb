"""The reconciler against a real kernel (a private network namespace), without a cluster: rows converge,
repeat passes do nothing, deletion removes, a restarted agent adopts its own VIPs and drops stale ones,
and foreign addresses are never touched."""

from __future__ import annotations

import asyncio
import ipaddress
import subprocess
from collections.abc import Iterator

import pytest

from kubevip.agent.reconciler import Agent
from kubevip.agent.reporter import Outcome
from kubevip.config import AgentConfig
from kubevip.core.parse import service_from_dict
from kubevip.core.world import SERVICE, apply_event
from kubevip.net.addresses import AddressManager
from kubevip.net.namespace import Netns
from tests.fixtures.netns import scratch_netns
from tests.unit.objects import service

pytestmark = pytest.mark.net


@pytest.fixture
def netns() -> Iterator[Netns]:
    with scratch_netns("kvt-agent") as name:
        for cmd in (
            ["link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"],
            ["link", "set", "eth0", "up"],
            ["link", "set", "eth0p", "up"],
            ["link", "set", "lo", "up"],
            # An IPv4 address besides IPv6's link-local one: a dual-stack node (a node without any
            # address of a family carries no VIP of it on a named interface).
            ["addr", "add", "203.0.113.2/24", "dev", "eth0"],
        ):
            subprocess.run(["ip", "-n", name, *cmd], check=True)
        yield Netns(name)


def _cfg() -> AgentConfig:
    return AgentConfig.load(
        {
            "vip_nodename": "n1",
            "svc_enable": "true",
            "vip_interface": "eth0",
            "vip_arp": "false",
            "vip_leaderelection": "false",
        }
    )


async def _addrs(ns: Netns) -> set[str]:
    present = await asyncio.to_thread(AddressManager("eth0", ns).present)
    return {str(a) for a, _ in present}


async def test_converge_add_repeat_delete(netns: Netns) -> None:
    agent = Agent(_cfg(), None, ns=netns)
    agent.held = await agent.kernel_rows()
    svc = service_from_dict(
        service("web", "192.0.2.10,2001:db8::10", families=("IPv4", "IPv6"), policy="PreferDualStack")
    )
    agent.touched(apply_event(agent.world, SERVICE, False, svc))
    agent.leadership.set_units({"default/web": None})
    ch = await agent.converge()
    assert {str(r.address) for r in ch.add} == {"192.0.2.10", "2001:db8::10"}
    assert {"192.0.2.10", "2001:db8::10"} <= (await _addrs(netns))
    assert agent.metrics.active_services.labels("default")._value.get() == 1
    assert agent.metrics.announced_vips.labels("IPv6")._value.get() == 1
    assert [agent.metrics.service_vips.labels(f)._value.get() for f in ("IPv4", "IPv6")] == [1, 1]
    # kube-vip's label: the pass is observed once for the namespace of the Service that changed.
    count = agent.metrics.registry.get_sample_value(
        "kube_vip_service_reconcile_duration_seconds_count", {"namespace": "default"})
    assert count == 1
    assert (await agent.converge()).empty  # idempotent
    agent.touched(apply_event(agent.world, SERVICE, True, svc))
    ch = await agent.converge()
    assert {str(r.address) for r in ch.remove} == {"192.0.2.10", "2001:db8::10"}
    assert [agent.metrics.service_vips.labels(f)._value.get() for f in ("IPv4", "IPv6")] == [0, 0]
    assert not {"192.0.2.10", "2001:db8::10"} & (await _addrs(netns))


async def test_restart_adopts_own_and_drops_stale_keeps_foreign(netns: Netns) -> None:
    foreign = ["ip", "-n", netns.name or "", "addr", "add", "192.0.2.99/32", "dev", "eth0"]
    await asyncio.to_thread(subprocess.run, foreign, check=True)
    first = Agent(_cfg(), None, ns=netns)
    for name, vip in (("keep", "192.0.2.1"), ("gone", "192.0.2.2")):
        apply_event(first.world, SERVICE, False, service_from_dict(service(name, vip)))
    await first.converge()
    assert {"192.0.2.1", "192.0.2.2"} <= (await _addrs(netns))

    # A new process: "gone" was deleted while no agent ran.
    second = Agent(_cfg(), None, ns=netns)
    second.held = await second.kernel_rows()
    assert {str(r.address) for r in second.held} == {"192.0.2.1", "192.0.2.2"}
    apply_event(second.world, SERVICE, False, service_from_dict(service("keep", "192.0.2.1")))
    ch = await second.converge()
    assert [str(r.address) for r in ch.remove] == ["192.0.2.2"]
    assert not ch.add, "the VIP still wanted was kept, not re-added (no flap)"
    assert (await _addrs(netns)) >= {"192.0.2.1", "192.0.2.99"} and "192.0.2.2" not in (await _addrs(netns))
    second._stopping = True
    await second.converge()
    assert "192.0.2.99" in (await _addrs(netns)), "an address kubevip did not add is never removed"
    assert ipaddress.ip_address("192.0.2.1") not in {r.address for r in second.held}


async def test_units_fencing_together_share_one_pass(netns: Netns) -> None:
    """A node fencing many units at once withdraws them in one pass, not one pass per unit, and every
    stop returns only after that pass."""
    agent = Agent(_cfg(), None, ns=netns)
    agent.held = await agent.kernel_rows()
    svcs = [service_from_dict(service(f"s{i}", f"192.0.2.{20 + i}")) for i in range(40)]
    for svc in svcs:
        agent.touched(apply_event(agent.world, SERVICE, False, svc))
    agent.leadership.set_units({f"default/s{i}": None for i in range(40)})
    await agent.converge()
    assert len(agent.held) == 40
    for svc in svcs:
        agent.touched(apply_event(agent.world, SERVICE, True, svc))
    before = agent.passes
    await asyncio.gather(*(agent._unit_stopped(f"default/s{i}") for i in range(40)))
    assert agent.passes - before == 1
    assert not agent.held and not {f"192.0.2.{20 + i}" for i in range(40)} & (await _addrs(netns))
    await agent._unit_stopped("default/s0")  # a later stop gets a pass of its own
    assert agent.passes - before == 2


def _count_desired(agent: Agent) -> list[int]:
    """Counts the passes that compute desired rows (a settled pass computes none): [count]."""
    computed = [0]
    desired = agent.desired

    def counting(*args: object, **kw: object) -> object:
        computed[0] += 1
        return desired(*args, **kw)  # type: ignore[arg-type]

    agent.desired = counting  # type: ignore[method-assign]
    return computed


async def test_a_settled_pass_costs_nothing_until_an_input_moves(netns: Netns) -> None:
    """With nothing changed since a pass that left nothing undone, the periodic pass computes nothing;
    a Service change, or a failed kernel change, makes the next pass work again."""
    agent = Agent(_cfg(), None, ns=netns)
    agent.held = await agent.kernel_rows()
    computed = _count_desired(agent)
    svc = service_from_dict(service("web", "192.0.2.30"))
    agent.touched(apply_event(agent.world, SERVICE, False, svc))
    await agent.converge()
    await agent.converge()  # the first pass also resolved the interfaces
    settled = computed[0]
    for _ in range(3):
        assert (await agent.converge()).empty
    assert computed[0] == settled and {str(r.address) for r in agent.held} == {"192.0.2.30"}
    agent.touched(apply_event(agent.world, SERVICE, True, svc))
    assert {str(r.address) for r in (await agent.converge()).remove} == {"192.0.2.30"}
    assert computed[0] == settled + 1
    # An address the kernel refuses (no such interface) stays undone: every pass tries again.
    agent._ifaces = {fam: "nosuch0" for fam in agent._ifaces}
    agent.touched(apply_event(agent.world, SERVICE, False, svc))
    await agent.converge()
    await agent.converge()
    assert computed[0] == settled + 3 and not agent.held


async def test_report_rounds_look_at_every_service_only_when_more_than_their_objects_changed(
    netns: Netns,
) -> None:
    agent = Agent(_cfg(), None, ns=netns)
    agent.held = await agent.kernel_rows()
    for i in range(3):
        svc = service_from_dict(service(f"s{i}", f"192.0.2.{40 + i}"))
        agent.touched(apply_event(agent.world, SERVICE, False, svc))
    await agent.converge()
    assert agent.snap is not None

    def out() -> Outcome:
        assert agent.reporter.outcome is not None
        return agent.reporter.outcome

    everyone = {"default/s0", "default/s1", "default/s2"}
    assert set(agent.reporter.round(out())) == everyone
    assert list(agent.reporter.round(out())) == []
    agent.written_back({"default/s1"})  # a status edit: only that Service is checked
    assert list(agent.reporter.round(out())) == ["default/s1"]
    agent.reporter.reports.failed_status["default/s2"] = 0.0  # a write waiting for its retry: all again
    assert set(agent.reporter.round(out())) == everyone
    agent.reporter.reports.failed_status.clear()
    agent.reporter.round(out())
    agent.touched(apply_event(agent.world, SERVICE, True, service_from_dict(service("s0", "192.0.2.40"))))
    await agent.converge()  # the snapshot moved: every Service
    assert set(agent.reporter.round(out())) == everyone - {"default/s0"}


def _cfg_routes() -> AgentConfig:
    """No vip_interface: each family's VIPs go on that family's default-route interface."""
    return AgentConfig.load(
        {"vip_nodename": "n1", "svc_enable": "true", "vip_arp": "false", "vip_leaderelection": "false"}
    )


async def test_a_single_stack_node_announces_its_family_warns_once_and_settles(
    netns: Netns, caplog: pytest.LogCaptureFixture
) -> None:
    """An IPv4-only node (no IPv6 address, no IPv6 default route): a dual-stack Service's IPv4 VIP is
    announced, its IPv6 VIP gets a Warning naming the node, and the missing family is not looked up
    (nor logged) on every pass: periodic passes settle like on a dual-stack node (issue 25)."""
    for cmd in (["addr", "add", "198.51.100.2/24", "dev", "eth0"],
                ["route", "add", "default", "via", "198.51.100.1", "dev", "eth0"]):
        await asyncio.to_thread(subprocess.run, ["ip", "-n", netns.name, *cmd], check=True)
    agent = Agent(_cfg_routes(), None, ns=netns)
    agent.held = await agent.kernel_rows()
    computed = _count_desired(agent)
    svc = service_from_dict(service("web", "192.0.2.50,2001:db8::50", families=("IPv4", "IPv6"),
                                    policy="PreferDualStack"))
    caplog.set_level("WARNING", logger="kubevip.agent.reconciler")
    agent.touched(apply_event(agent.world, SERVICE, False, svc))
    await agent.converge()
    assert {(str(r.address), r.interface) for r in agent.held} == {("192.0.2.50", "eth0")}
    assert "2001:db8::50" not in await _addrs(netns)
    warned = agent._node_warnings["default/web"]
    assert [c.reason for c in warned] == ["no-interface-for-family"]
    assert "2001:db8::50" in next(iter(warned)).message
    await agent.converge()  # the first pass also looked the interfaces up (as on a dual-stack node)
    settled = computed[0]
    for _ in range(5):
        assert (await agent.converge()).empty
    assert computed[0] == settled  # nothing to compute: the IPv6 lookup is not due again yet
    lines = [r for r in caplog.records if "IPv6" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]


async def test_a_vip_granted_after_the_pass_is_not_listed_when_this_node_cannot_announce_it(
    netns: Netns, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The election hands an IPv4-only node a Service's IPv6 VIP after a pass in which it held nothing:
    the report round that follows (before the next pass) must not list it in the status (CI, IPv6-only
    lab: an IPv4 VIP nobody answered on stayed in a status through the hold-down)."""
    for cmd in (["addr", "add", "198.51.100.2/24", "dev", "eth0"],
                ["route", "add", "default", "via", "198.51.100.1", "dev", "eth0"]):
        await asyncio.to_thread(subprocess.run, ["ip", "-n", netns.name, *cmd], check=True)
    agent = Agent(_cfg_routes(), None, ns=netns)
    agent.held = await agent.kernel_rows()
    svc = service_from_dict(service("v6", "2001:db8::60", families=("IPv6",)))
    agent.touched(apply_event(agent.world, SERVICE, False, svc))
    held = False
    monkeypatch.setattr(agent.leadership, "holds", lambda unit: held)
    await agent.converge()
    assert "default/v6" not in agent._node_warnings  # not held: no Warning from this node
    outcomes: list[Outcome] = []
    monkeypatch.setattr(agent.reporter, "passed", outcomes.append)
    await agent.converge()
    held = True  # the election moved; no pass yet
    jobs = list(agent.reporter.jobs(outcomes[-1], ["default/v6"]))
    assert jobs == []  # nothing to write: the status stays empty rather than list 2001:db8::60
