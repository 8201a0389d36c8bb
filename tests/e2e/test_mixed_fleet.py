"""A mixed fleet (issue 15): upstream kube-vip (bench/peers/kube-vip/build.sh) on one lab node, kubevip on
the others, the same kube-vip environment; they elect on the same per-Service Lease, so a VIP is on one
node at a time while the holder moves between implementations. The shared node watcher (`E2E.watch`)
reads every node's interface addresses the whole time (implementation-agnostic: any address counts)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from pathlib import Path

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kubevip.lab.stack import node_admin_kubeconfig
from tests.e2e.conftest import E2E
from tests.fixtures.kube_vip import kube_vip_binary

__all__ = ["kube_vip_binary"]  # the fixture, used by name
pytestmark = pytest.mark.e2e

# svc_election true: the Service's own Lease; false: kube-vip's global Services Lease.
MODES = {"per-service": ("true", "kubevip-web"), "global": ("false", "plndr-svcs-lock")}


async def _holder(e2e: E2E, lease_name: str) -> str | None:
    try:
        lease = await client.CoordinationV1Api(e2e.api).read_namespaced_lease(lease_name, e2e.ns)
    except ApiException:
        return None
    return lease.spec.holder_identity or None


class Prober:
    """A client asking both VIPs the whole time; the longest stretch without an answer per family."""

    def __init__(self, e2e: E2E, vips: dict[str, object]) -> None:
        self.e2e, self.vips = e2e, vips
        self.longest = dict.fromkeys(vips, 0.0)
        self._since: dict[str, float | None] = dict.fromkeys(vips)
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            for fam, vip in self.vips.items():
                ok = await self.e2e.reach(vip, wait=0.3)  # type: ignore[arg-type]
                now = loop.time()
                if ok:
                    start = self._since[fam]
                    if start is not None:
                        self.longest[fam] = max(self.longest[fam], now - start)
                    self._since[fam] = None
                elif self._since[fam] is None:
                    self._since[fam] = now
            await asyncio.sleep(0.05)

    async def __aenter__(self) -> Prober:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Cancelled and awaited: a task left cancelling would outlive the test (the leak guard).
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@pytest.mark.parametrize("mode", list(MODES))
async def test_kube_vip_and_kubevip_share_the_lease_never_two_holders(
    mode: str, e2e: E2E, kube_vip_binary: Path, tmp_path: Path
) -> None:
    svc_election, lease = MODES[mode]
    v4, v6 = e2e.vip(4), e2e.vip(6)
    await e2e.service("web", [v4, v6], families=("IPv4", "IPv6"), policy="PreferDualStack")
    # The same kube-vip environment for both; kube-vip's integer seconds.
    common = {"vip_electionmode": "lease", "svc_election": svc_election, "vip_leaseduration": "4",
              "vip_renewdeadline": "3", "vip_retryperiod": "1", "cp_namespace": e2e.ns}
    admin = node_admin_kubeconfig(e2e.cp, e2e.lab)
    kv_node, kubevip_nodes = e2e.nodes[0], e2e.nodes[1:]
    from kubevip.lab.agents import agent_env

    kv_env = {**agent_env(kv_node, admin, {**e2e.fleet.extra_env, **common}), "k8s_config_file": str(admin)}
    kv_env.pop("vip_electionmode")
    log = (tmp_path / "kube-vip.log").open("wb")

    def start_kube_vip() -> subprocess.Popen[bytes]:
        return e2e.lab.popen(kv_node.netns, [str(kube_vip_binary), "manager"], env=kv_env, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)

    kv = start_kube_vip()
    prober: Prober | None = None
    try:
        async with e2e.watch(v4, v6) as sampler:  # fails on any instant with two holders
            # kube-vip alone takes the Lease and both VIPs.
            assert await e2e.eventually(_holder_is(e2e, lease, kv_node.name), f"kube-vip holds {lease}", 90)
            assert await e2e.eventually(lambda: _reach_is(e2e, v4, kv_node.name), "IPv4 on kube-vip's node")
            assert await e2e.eventually(lambda: _reach_is(e2e, v6, kv_node.name), "IPv6 on kube-vip's node")
            prober = await Prober(e2e, {"IPv4": v4, "IPv6": v6}).__aenter__()  # from here on: gaps count
            # kubevip joins on the same Lease: kube-vip keeps it, nobody else adds the VIP.
            e2e.fleet.extra_env.update(common)
            e2e.fleet.start(tuple(kubevip_nodes))
            await asyncio.sleep(8)  # two lease durations for a wrong second holder to appear
            assert await _holder(e2e, lease) == kv_node.name
            # kube-vip -> kubevip: SIGTERM releases; a kubevip node takes the same Lease and the VIPs.
            kv.send_signal(signal.SIGTERM)
            kv.wait(30)
            kubevip_names = {n.name for n in kubevip_nodes}
            new = await e2e.eventually(_holder_in(e2e, lease, kubevip_names), "a kubevip node takes it")
            assert await e2e.eventually(lambda: _reach_is(e2e, v4, new), "IPv4 follows to kubevip")
            assert await e2e.eventually(lambda: _reach_is(e2e, v6, new), "IPv6 follows to kubevip")
            # And back: kube-vip rejoins, the kubevip holders leave; kube-vip takes over.
            kv = start_kube_vip()
            await asyncio.sleep(4)
            e2e.fleet.stop()
            assert await e2e.eventually(_holder_is(e2e, lease, kv_node.name), "kube-vip holds it again", 90)
            assert await e2e.eventually(lambda: _reach_is(e2e, v4, kv_node.name), "IPv4 back on kube-vip")
            assert await e2e.eventually(lambda: _reach_is(e2e, v6, kv_node.name), "IPv6 back on kube-vip")
        assert len(sampler.samples) > 20
        # Recorded for docs/migration.md (printed with -s); timing goals live in bench/, not here.
        assert prober is not None
        gaps = prober.longest
        print(f"mixed fleet ({mode}): {len(sampler.samples)} address samples, two-holder samples "
              f"0, longest client gap IPv4 {gaps['IPv4']:.2f}s IPv6 {gaps['IPv6']:.2f}s")
    finally:
        if prober is not None:
            await prober.__aexit__()
        with contextlib.suppress(ProcessLookupError):
            kv.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            kv.wait(20)
        if kv.poll() is None:
            kv.kill()
            kv.wait(5)
        log.close()


def _holder_is(e2e: E2E, lease: str, node: str):  # type: ignore[no-untyped-def]
    async def probe() -> bool:
        return await _holder(e2e, lease) == node
    return probe


def _holder_in(e2e: E2E, lease: str, nodes: set[str]):  # type: ignore[no-untyped-def]
    async def probe() -> str | None:
        h = await _holder(e2e, lease)
        return h if h in nodes else None
    return probe


async def _reach_is(e2e: E2E, vip: object, node: str) -> bool:
    return await e2e.reach(vip) == node  # type: ignore[arg-type]
