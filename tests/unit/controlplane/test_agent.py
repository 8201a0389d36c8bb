"""The control-plane runner against an in-memory Lease store: one election for both families, health
gating, release on shutdown, fencing when the API server goes away, DNS changes while leading."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import AsyncIterator, Callable

import pytest

from kubevip.controlplane.agent import ControlPlaneVip
from kubevip.controlplane.resolve import parse_addresses
from kubevip.controlplane.settings import ControlPlaneSettings, HealthSettings
from kubevip.election.timings import ElectionConfig, Timings
from kubevip.ip import IPAddress
from tests.unit.controlplane.fakes import FakeKernel, FakeLeaseApi, World

V4 = ipaddress.IPv4Address("198.18.1.10")
V6 = ipaddress.IPv6Address("fd6b:7669:7000:1::10")
TIMINGS = Timings(lease_duration=0.4, renew_deadline=0.25, retry_period=0.05, skew_margin=0.1)


def settings(address: str = f"{V4},{V6}") -> ControlPlaneSettings:
    return ControlPlaneSettings(
        enabled=True, entries=parse_addresses(address), port=6443, dns_mode="dual", apiserver="local",
        health=HealthSettings(period=0.02, timeout=0.02, threshold=2), dns_interval=0.05,
    )


ELECTION = ElectionConfig(True, "plndr-cp-lock", "kube-system", "plndr-svcs-lock", False, "lease", TIMINGS)


async def wait_until(cond: Callable[[], bool], within: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + within
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what or cond}"
        await asyncio.sleep(0.005)


class Cluster:
    def __init__(self) -> None:
        self.api = FakeLeaseApi()
        self.world = World()
        self.healthy: dict[str, bool] = {}
        self.runners: dict[str, ControlPlaneVip] = {}
        self.answers: list[IPAddress] = [V4, V6]

    async def add(self, node: str, healthy: bool = True, address: str = f"{V4},{V6}") -> ControlPlaneVip:
        self.healthy[node] = healthy

        async def probe() -> bool:
            return self.healthy[node]

        async def lookup(name: str) -> list[IPAddress]:
            return list(self.answers)

        r = ControlPlaneVip(settings(address), ELECTION, node, self.api.view(node), probe,
                            FakeKernel(node, self.world), lookup=lookup)
        self.runners[node] = r
        await r.start()
        return r

    def held_by(self) -> dict[str, set[str]]:
        return self.world.holders()

    def holder_of_all(self) -> str | None:
        """The node holding BOTH VIPs (None if no node holds both)."""
        h = self.held_by()
        nodes = h.get(str(V4), set()) & h.get(str(V6), set())
        return next(iter(nodes)) if len(nodes) == 1 else None


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    c = Cluster()
    yield c
    for r in c.runners.values():
        await r.shutdown()
    assert not c.world.violations, c.world.violations


async def test_one_election_puts_both_families_on_one_node(cluster: Cluster) -> None:
    for n in ("a", "b", "c"):
        await cluster.add(n)
    await wait_until(lambda: cluster.holder_of_all() is not None, what="a holder of both VIPs")
    holder = cluster.holder_of_all()
    assert cluster.api.holder() == holder
    # Only one Lease exists, for both families.
    assert list(cluster.api.store) == [("kube-system", "plndr-cp-lock")]
    assert cluster.held_by() == {str(V4): {holder}, str(V6): {holder}}


async def test_no_campaign_before_the_local_api_server_is_healthy(cluster: Cluster) -> None:
    r = await cluster.add("a", healthy=False)
    await wait_until(lambda: r.health.checks >= 10, what="ten health checks")
    assert r.elector is None and not cluster.api.store and not cluster.held_by()
    cluster.healthy["a"] = True
    await wait_until(lambda: cluster.holder_of_all() == "a", what="a to hold the VIPs once healthy")


async def test_unhealthy_holder_gives_up_and_a_healthy_peer_takes_over(cluster: Cluster) -> None:
    a = await cluster.add("a")
    await wait_until(lambda: cluster.holder_of_all() == "a")
    await cluster.add("b")
    cluster.healthy["a"] = False
    await wait_until(lambda: cluster.holder_of_all() == "b", what="b to take over")
    # a released (withdraw, then empty Lease) and b took the empty Lease: b never waited out a's Lease
    # (taking over at expiry would show "a" followed directly by "b").
    assert cluster.api.holders_written() == ["a", None, "b"]
    assert not a.kernel.held and not a.leading
    cluster.healthy["a"] = True  # back: a campaigns again but b keeps the VIPs
    await wait_until(lambda: a.campaigns == 2)
    await wait_until(lambda: a.health.checks > 20)
    assert cluster.holder_of_all() == "b"


async def test_shutdown_withdraws_and_releases_at_once(cluster: Cluster) -> None:
    a = await cluster.add("a")
    await wait_until(lambda: cluster.holder_of_all() == "a")
    await cluster.add("b")
    await a.shutdown()
    assert not a.kernel.held
    assert cluster.api.holder() in (None, "b")
    await wait_until(lambda: cluster.holder_of_all() == "b")
    # The Lease was handed back empty before b took it, so b did not wait for expiry.
    assert cluster.api.holders_written() == ["a", None, "b"]


async def test_holder_cut_from_its_api_server_fences_before_the_peer_takes_over(cluster: Cluster) -> None:
    a = await cluster.add("a")
    await wait_until(lambda: cluster.holder_of_all() == "a")
    await cluster.add("b")
    cluster.api.down.add("a")  # renewals fail; health stays "ok" so only fencing can save us
    await wait_until(lambda: not a.kernel.held, what="a to fence")
    await wait_until(lambda: cluster.holder_of_all() == "b", what="b to take over after expiry")
    # The World checks every change: never both at once (asserted in the fixture).


async def test_dns_change_moves_the_vips_while_leading(cluster: Cluster) -> None:
    a = await cluster.add("a", address="cp.example.com")
    await wait_until(lambda: cluster.holder_of_all() == "a")
    new4 = ipaddress.IPv4Address("198.18.1.11")
    cluster.answers = [new4, V6]
    await wait_until(lambda: cluster.held_by().get(str(new4)) == {"a"}, what="the new IPv4 VIP")
    assert str(V4) not in cluster.held_by()
    assert a.vips.v4 == new4


async def test_vips_get_kernel_lifetimes_and_renewals_extend_them(cluster: Cluster) -> None:
    """Added with a lifetime (never permanent while lifetimes are on), extended after renewals."""
    await cluster.add("n1")
    await wait_until(lambda: cluster.holder_of_all() == "n1", what="n1 holds both VIPs")
    kernel = cluster.world.kernels["n1"]
    assert kernel.lifetimes and all(lt == 1 for lt in kernel.lifetimes)  # 0.4 s Lease: the minimum
    before = len(kernel.extensions)
    await wait_until(lambda: len(kernel.extensions) >= before + 3, what="extensions after renewals")
    assert set(kernel.extensions) == {1}
