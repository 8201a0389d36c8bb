"""`kubevip ipam` on the real control plane: concurrent allocation, restarts, ConfigMap edits, families.

Each test uses its own namespace, ConfigMap and loadBalancerClass (lb_class_only), so the controller
touches no Service of any other test running against the same control plane.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
from kubernetes_asyncio import client

from kubevip.core.selection import ClassFilter
from kubevip.ipam.controller import IpamController, IpamSettings
from kubevip.ipam.service import ANNOTATION_IPS, LABEL_KEY, LABEL_VALUE
from kubevip.kube.rest import RestClient
from tests.fixtures import waiting

pytestmark = pytest.mark.cluster

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Every 0.2 s, not the default 0.05 s: the probes list up to 200 Services from a shared API server.
eventually = partial(waiting.eventually, within=60.0, interval=0.2)


@dataclass
class Env:
    api: client.ApiClient
    core: client.CoreV1Api
    ns: str
    settings: IpamSettings
    rest: RestClient  # what the controller gets: kubevip's own client

    @property
    def lb_class(self) -> str:
        return self.settings.classes.name

    async def configmap(self, data: dict[str, str]) -> None:
        body = {"metadata": {"name": self.settings.configmap, "namespace": self.ns}, "data": data}
        try:
            await self.core.replace_namespaced_config_map(self.settings.configmap, self.ns, body)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            await self.core.create_namespaced_config_map(self.ns, body)

    async def service(self, name: str, policy: str = "RequireDualStack", families: list[str] | None = None,
                      annotations: dict[str, str] | None = None, port: int = 80) -> None:
        spec: dict[str, Any] = {
            "type": "LoadBalancer", "loadBalancerClass": self.lb_class, "ipFamilyPolicy": policy,
            "ports": [{"name": "p", "port": port, "targetPort": port, "protocol": "TCP"}],
        }
        if families:
            spec["ipFamilies"] = families
        meta: dict[str, Any] = {"name": name, "namespace": self.ns}
        if annotations:
            meta["annotations"] = annotations
        await self.core.create_namespaced_service(self.ns, {"metadata": meta, "spec": spec})

    async def services(self) -> dict[str, Any]:
        res = await self.core.list_namespaced_service(self.ns)
        return {s.metadata.name: s for s in res.items}

    async def addresses(self) -> dict[str, tuple[IPAddress, ...]]:
        out = {}
        for name, s in (await self.services()).items():
            text = (s.metadata.annotations or {}).get(ANNOTATION_IPS)
            if text:
                out[name] = tuple(ipaddress.ip_address(x) for x in text.split(","))
        return out

    async def event_reasons(self, name: str) -> set[str]:
        res = await self.core.list_namespaced_event(self.ns, field_selector=f"involvedObject.name={name}")
        return {e.reason for e in res.items}

    def controller(self) -> IpamController:
        return IpamController(self.rest, self.settings)


@pytest.fixture
async def env(kube_admin: client.ApiClient, rest_admin: RestClient, kube_namespace: str) -> Env:
    tag = secrets.token_hex(3)
    settings = IpamSettings(
        configmap=f"kvt-ipam-{tag}", namespace=kube_namespace,
        classes=ClassFilter(name=f"kvt.test/ipam-{tag}", only=True), retry_seconds=0.5,
    )
    return Env(kube_admin, client.CoreV1Api(kube_admin), kube_namespace, settings, rest_admin)


@pytest.fixture
async def running(env: Env) -> AsyncIterator[IpamController]:
    ctl = env.controller()
    await ctl.start()
    try:
        yield ctl
    finally:
        await ctl.close()
    assert not ctl.crashed


def family(a: IPAddress) -> str:
    return "IPv4" if a.version == 4 else "IPv6"


async def test_200_dual_stack_services_created_at_once_get_distinct_addresses(env: Env) -> None:
    # Two overlapping pools (namespace and global): kube-vip's provider could hand an address out twice.
    await env.configmap({
        f"cidr-{env.ns}": "10.210.0.0/24,fd00:210::/120",
        "range-global": "10.210.0.1-10.210.0.200,fd00:210::1-fd00:210::ff",
        "cidr-global": "10.210.0.0/24",
    })
    ctl = env.controller()
    await ctl.start()
    try:
        sem = asyncio.Semaphore(25)

        async def create(i: int) -> None:
            async with sem:
                await env.service(f"s{i}", families=["IPv6", "IPv4"] if i % 2 else ["IPv4", "IPv6"])

        await asyncio.gather(*(create(i) for i in range(200)))

        async def all_done() -> dict[str, tuple[IPAddress, ...]] | None:
            got = await env.addresses()
            return got if len(got) == 200 and all(len(v) == 2 for v in got.values()) else None

        got = await eventually(all_done, "200 Services with two addresses each", within=180)
    finally:
        await ctl.close()
    assert not ctl.crashed
    flat = [a for v in got.values() for a in v]
    assert len(flat) == len(set(flat)) == 400
    pool4, pool6 = ipaddress.ip_network("10.210.0.0/24"), ipaddress.ip_network("fd00:210::/120")
    for name, addrs in got.items():
        i = int(name[1:])
        assert [family(a) for a in addrs] == (["IPv6", "IPv4"] if i % 2 else ["IPv4", "IPv6"])
        assert all(a in pool4 or a in pool6 for a in addrs)
        assert all(not (a.version == 4 and a.packed[-1] in (0, 255)) for a in addrs)
    for s in (await env.services()).values():
        assert (s.metadata.labels or {}).get(LABEL_KEY) == LABEL_VALUE
        assert s.spec.load_balancer_ip is None  # two VIPs: spec.loadBalancerIP is for one


async def test_restart_keeps_every_address_and_adds_without_collisions(env: Env) -> None:
    await env.configmap({"range-global": "10.211.0.1-10.211.0.60,fd00:211::1-fd00:211::3c"})
    first = env.controller()
    await first.start()
    try:
        await asyncio.gather(*(env.service(f"a{i}", policy="PreferDualStack", families=["IPv4", "IPv6"])
                               for i in range(30)))
        before = await eventually(lambda: _n_with(env, 30, 2), "30 dual-stack Services allocated")
    finally:
        await first.close()

    second = env.controller()
    await second.start()
    try:
        await asyncio.gather(*(env.service(f"b{i}", policy="SingleStack", families=["IPv6"])
                               for i in range(10)))
        after = await eventually(lambda: _n_with(env, 40, None), "10 more Services allocated")
        await second.wait_idle()
        assert second.writes == 10  # nothing rewritten for the 30 that already had addresses
    finally:
        await second.close()
    assert {k: after[k] for k in before} == before
    flat = [a for v in after.values() for a in v]
    assert len(flat) == len(set(flat)) == 70


async def _n_with(env: Env, n: int, each: int | None) -> dict[str, tuple[IPAddress, ...]] | None:
    got = await env.addresses()
    if len(got) == n and (each is None or all(len(v) == each for v in got.values())):
        return got
    return None


async def test_configmap_edits_take_effect_and_bad_keys_are_named(env: Env, running: IpamController) -> None:
    await env.configmap({"range-global": "10.212.0.1-10.212.0.2"})
    for i in range(3):
        await env.service(f"v{i}", policy="SingleStack", families=["IPv4"])
    got = await eventually(lambda: _n_with(env, 2, 1), "two of three Services allocated")

    (waiting,) = {"v0", "v1", "v2"} - set(got)
    await eventually(lambda: _has_reason(env, waiting, "AddressPoolExhausted"), "exhausted Event")

    # A malformed entry: an Event on the ConfigMap names the key; the good entry still works.
    await env.configmap({"range-global": "10.212.0.1-10.212.0.3,10.212.0.9-oops"})
    await eventually(lambda: _has_reason(env, env.settings.configmap, "ConfigMapInvalid"), "ConfigMap Event")
    events = await env.core.list_namespaced_event(
        env.ns, field_selector=f"involvedObject.name={env.settings.configmap}")
    assert any("range-global" in e.message for e in events.items)
    got = await eventually(lambda: _n_with(env, 3, 1), "third Service allocated after the pool grew")
    assert got[waiting] == (ipaddress.ip_address("10.212.0.3"),)

    # An IPv6 pool appears: a PreferDualStack Service that got only IPv4 gains IPv6, keeping its IPv4.
    await env.configmap({"range-global": "10.212.0.1-10.212.0.4"})
    await env.service("dual", policy="PreferDualStack", families=["IPv4", "IPv6"])
    one = await eventually(lambda: _addr_of(env, "dual", 1), "dual gets IPv4 only")
    await eventually(lambda: _has_reason(env, "dual", "NoAddressPool"), "no IPv6 pool Event")
    await env.configmap({"range-global": "10.212.0.1-10.212.0.4,fd00:212::1-fd00:212::4"})
    two = await eventually(lambda: _addr_of(env, "dual", 2), "dual gains IPv6")
    assert two[0] == one[0] and two[1] == ipaddress.ip_address("fd00:212::1")


async def _addr_of(env: Env, name: str, n: int) -> tuple[IPAddress, ...] | None:
    got = (await env.addresses()).get(name)
    return got if got is not None and len(got) == n else None


async def _has_reason(env: Env, name: str, reason: str) -> bool:
    return reason in await env.event_reasons(name)


async def test_user_addresses_are_kept_and_deleted_services_release(
    env: Env, running: IpamController,
) -> None:
    await env.configmap({"range-global": "10.213.0.1-10.213.0.2"})
    await env.service("user", policy="SingleStack", families=["IPv4"],
                      annotations={ANNOTATION_IPS: "10.213.0.1"})
    await env.service("a", policy="SingleStack", families=["IPv4"])
    await env.service("b", policy="SingleStack", families=["IPv4"])
    got = await eventually(lambda: _n_with(env, 2, 1), "one Service allocated besides the user's")
    assert got["user"] == (ipaddress.ip_address("10.213.0.1"),)
    (winner,) = set(got) - {"user"}
    (loser,) = {"a", "b"} - {winner}
    assert got[winner] == (ipaddress.ip_address("10.213.0.2"),)
    svc = (await env.services())["user"]
    assert LABEL_KEY not in (svc.metadata.labels or {})  # never taken over

    await env.core.delete_namespaced_service(winner, env.ns)
    moved = await eventually(lambda: _addr_of(env, loser, 1), "waiting Service gets the freed address")
    assert moved == (ipaddress.ip_address("10.213.0.2"),)


async def test_family_changes(env: Env, running: IpamController) -> None:
    await env.configmap({"range-global": "10.214.0.1-10.214.0.9,fd00:214::1-fd00:214::9"})
    await env.service("s", policy="PreferDualStack", families=["IPv4", "IPv6"])
    dual = await eventually(lambda: _addr_of(env, "s", 2), "dual-stack allocation")

    # Dual -> Single: the dropped family is released, the kept one stays.
    await env.core.patch_namespaced_service("s", env.ns, {"spec": {"ipFamilyPolicy": "SingleStack",
                                                                  "ipFamilies": ["IPv4"]}})
    single = await eventually(lambda: _addr_of(env, "s", 1), "IPv6 released")
    assert single == dual[:1]
    svc = (await env.services())["s"]
    assert svc.spec.load_balancer_ip == str(dual[0])

    await env.service("t", policy="SingleStack", families=["IPv6"])
    taken = await eventually(lambda: _addr_of(env, "t", 1), "IPv6 Service allocated")
    assert taken == dual[1:]  # the released IPv6 address is free again

    # Single -> Dual: one address of the new family is added.
    await env.core.patch_namespaced_service("s", env.ns, {"spec": {"ipFamilyPolicy": "PreferDualStack"}})
    again = await eventually(lambda: _addr_of(env, "s", 2), "IPv6 added")
    assert again[0] == dual[0] and again[1].version == 6 and again[1] != taken[0]


async def test_a_users_invalid_value_is_left_alone_with_a_warning(env: Env, running: IpamController) -> None:
    """Issue 16: `10.0.0.300,fd00::zz` used to be replaced by an allocated address."""
    await env.configmap({"cidr-global": "10.212.0.0/28,fd00:212::/124"})
    await env.service("typo", annotations={ANNOTATION_IPS: "10.0.0.300,fd00::zz"})
    await env.service("fine")
    await eventually(lambda: _has(env, "fine"), "the valid Service is allocated")

    async def warned() -> set[str] | None:
        got = await env.event_reasons("typo")
        return got if "InvalidAddress" in got else None

    await eventually(warned, "an InvalidAddress Warning on the Service with the typo")
    await running.wait_idle()
    typo = (await env.services())["typo"]
    assert typo.metadata.annotations[ANNOTATION_IPS] == "10.0.0.300,fd00::zz", "never overwritten"
    assert LABEL_KEY not in (typo.metadata.labels or {})


async def test_never_allocates_a_nodes_or_a_cluster_ip(
    env: Env, kube_admin: client.ApiClient,
) -> None:
    """The pool holds a Node's address and the `kubernetes` Service's ClusterIP: neither is handed out
    (the Node and ServiceCIDR watches feed the same address policy the agents apply)."""
    core = client.CoreV1Api(kube_admin)
    kubernetes = await core.read_namespaced_service("kubernetes", "default")
    cluster_ip = ipaddress.ip_address(kubernetes.spec.cluster_ip)
    node_name = f"kvt-node-{secrets.token_hex(3)}"
    node_ip = ipaddress.ip_address("10.213.0.2")
    await core.create_node({"metadata": {"name": node_name},
                            "status": {"addresses": [{"type": "InternalIP", "address": str(node_ip)}]}})
    try:
        await core.patch_node_status(node_name, {"status": {
            "addresses": [{"type": "InternalIP", "address": str(node_ip)}]}})
        await env.configmap({"range-global": f"10.213.0.1-10.213.0.3,{cluster_ip}-{cluster_ip}"})
        ctl = env.controller()
        await ctl.start()
        try:
            for i in range(4):
                await env.service(f"s{i}", policy="SingleStack", families=["IPv4"])
            await eventually(lambda: _count(env, 2), "two Services allocated")
            await ctl.wait_idle()
            got = {a for v in (await env.addresses()).values() for a in v}
            assert got == {ipaddress.ip_address("10.213.0.1"), ipaddress.ip_address("10.213.0.3")}
            reasons = set().union(*[await env.event_reasons(f"s{i}") for i in range(4)])
            assert "AddressPoolExhausted" in reasons
        finally:
            await ctl.close()
        assert not ctl.crashed
    finally:
        await core.delete_node(node_name)


async def _has(env: Env, name: str) -> bool:
    s = (await env.services()).get(name)
    return s is not None and bool((s.metadata.annotations or {}).get(ANNOTATION_IPS))


async def _count(env: Env, n: int) -> bool:
    return len(await env.addresses()) == n
