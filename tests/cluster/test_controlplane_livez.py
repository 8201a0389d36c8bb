"""The control-plane VIP's health gate against the real kube-apiserver: the Lease API works, only the
health path fails. A node whose probe fails never campaigns; a leader whose probe starts failing gives
the VIPs up; the kernel is the in-memory one of the unit tests (no root needed)."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from kubevip.controlplane.agent import ControlPlaneVip
from kubevip.controlplane.health import livez_probe
from kubevip.controlplane.resolve import parse_addresses
from kubevip.controlplane.settings import ControlPlaneSettings, HealthSettings
from kubevip.election.leaseapi import LeaseApi
from kubevip.election.timings import ElectionConfig, Timings
from kubevip.kube.rest import RestClient
from tests.fixtures.waiting import eventually
from tests.unit.controlplane.fakes import FakeKernel, World

pytestmark = pytest.mark.cluster

V4 = ipaddress.IPv4Address("198.18.1.10")
V6 = ipaddress.IPv6Address("fd6b:7669:7000:1::10")
# A health path the real API server answers 404 to: /livez itself keeps working for everyone else.
BROKEN = "/livez/kubevip-no-such-check"


def _settings() -> ControlPlaneSettings:
    return ControlPlaneSettings(
        enabled=True, entries=parse_addresses(f"{V4},{V6}"), port=6443, dns_mode="dual", apiserver="local",
        health=HealthSettings(period=0.1, timeout=1.0, threshold=2), dns_interval=5.0,
    )


async def test_livez_probe_on_the_real_api_server(rest_kubevip: RestClient) -> None:
    assert await livez_probe(rest_kubevip, "/livez", 5.0) is True
    assert await livez_probe(rest_kubevip, BROKEN, 5.0) is False


async def test_only_livez_failing_keeps_a_node_out_and_takes_a_leader_out(
    rest_kubevip: RestClient, kube_namespace: str
) -> None:
    election = ElectionConfig(True, "plndr-cp-lock", kube_namespace, "plndr-svcs-lock", False, "lease",
                              Timings())
    world = World()
    paths = {"a": "/livez", "b": BROKEN}
    runners: dict[str, ControlPlaneVip] = {}

    async def lookup(name: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        return [V4, V6]

    for node in ("a", "b"):
        async def probe(node: str = node) -> bool:
            return await livez_probe(rest_kubevip, paths[node], 1.0)

        runners[node] = ControlPlaneVip(_settings(), election, node, LeaseApi(rest_kubevip), probe,
                                        FakeKernel(node, world), lookup=lookup)
    try:
        for r in runners.values():
            await r.start()
        await eventually(lambda: world.holders() == {str(V4): {"a"}, str(V6): {"a"}}, "a holds both VIPs")
        b = runners["b"]
        await eventually(lambda: b.health.checks >= 10, "ten failed health checks on b")
        assert b.elector is None and b.campaigns == 0, "b campaigned with a failing /livez"
        # Now a's health path fails too (the Lease API still works): a gives the VIPs up, b stays out.
        paths["a"] = BROKEN
        await eventually(lambda: not world.holders(), "a withdraws once its probe fails")
        checks = b.health.checks
        await eventually(lambda: b.health.checks >= checks + 10, "ten more checks on b")
        assert not world.holders() and b.campaigns == 0
        assert not world.violations, world.violations
    finally:
        for r in runners.values():
            await r.shutdown()
        await asyncio.sleep(0)
