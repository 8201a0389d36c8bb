"""End-to-end harness: the session control plane + lab network, agents as processes in node namespaces,
responders standing in for pods, a client probing VIPs. Waits are on conditions with deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kubevip.lab import pods, versions
from kubevip.lab.agents import RESPONDER_PORT, Fleet, start_responders, stop_responders
from kubevip.lab.controlplane import ControlPlane
from kubevip.lab.network import LabNetwork
from kubevip.lab.stack import connect_network, node_kubeconfig, register_nodes
from kubevip.lab.topology import STACKS
from kubevip.net.addresses import ADDRESS_PROTO, AddressManager
from kubevip.net.namespace import Netns
from kubevip.tasks import bounded
from tests.fixtures.waiting import eventually

T = TypeVar("T")
_VIP_COUNTER = itertools.count()
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@pytest.fixture(scope="session")
def lab_responders(
    lab_network: LabNetwork, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, int]]:
    pids = start_responders(lab_network, tmp_path_factory.mktemp("responders"))
    try:
        yield pids
    finally:
        stop_responders(pids)


@dataclass
class NodeWatcher:
    """Every node's interface addresses, sampled from a thread (one netlink dump per node, ~every 10 ms)
    until stopped: which nodes carry each watched VIP at each instant. Implementation-agnostic (any
    address counts, ours or kube-vip's), so it also watches a mixed fleet. Used as `async with
    e2e.watch(*vips) as w:` around every failover: leaving the block fails the test if any sample saw a
    VIP on two nodes (and if the sampler itself died or took no samples)."""

    e2e: E2E
    vips: tuple[IPAddress, ...]
    samples: list[tuple[float, dict[IPAddress, frozenset[str]]]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    sampled: threading.Event = field(default_factory=threading.Event)  # the first sample is taken
    error: BaseException | None = None
    _thread: threading.Thread | None = None

    def run(self) -> None:
        try:
            with contextlib.ExitStack() as sockets:
                self._sample(sockets)
        except BaseException as exc:  # reported when the block ends: a dead sampler proves nothing
            self.error = exc
        finally:
            self.sampled.set()  # wakes __aenter__ also when the sampler died before its first sample

    def _sample(self, sockets: contextlib.ExitStack) -> None:
        managers = {}
        for n in self.e2e.nodes:
            # One netlink socket per node for the whole watch (this thread's shared blocks reuse it for
            # every lookup and dump; opening one costs a fork): a sample then takes milliseconds.
            sockets.enter_context(Netns(n.netns).shared())
            managers[n.name] = AddressManager(n.interface, Netns(n.netns))
        order = list(managers)
        while not self.stop.is_set():
            # The nodes are read one after the other, so one pass is no instant: a proper hand-over
            # between two reads would look like two holders. Each sample reads forward, then backward;
            # a VIP counts as doubled only when one node has it in both its reads and another node has
            # it in a read between those two (both held at that instant, unless the first flapped
            # within a few milliseconds).
            reads: list[tuple[float, str, set[IPAddress]]] = []
            for name in order + order[::-1]:
                reads.append((time.monotonic(), name, {a for a, _ in managers[name].present()}))
            at = reads[len(order) - 1][0]
            self.samples.append((at, {v: _holders_at(v, reads) for v in self.vips}))
            self.sampled.set()
            self.stop.wait(0.01)

    def doubles(self) -> list[tuple[float, dict[IPAddress, frozenset[str]]]]:
        return [(t, s) for t, s in self.samples if any(len(nodes) > 1 for nodes in s.values())]

    def holders(self, vip: IPAddress, since: float = 0.0) -> list[frozenset[str]]:
        """The distinct holder sets of `vip` after `since`, in order (runs collapsed)."""
        out: list[frozenset[str]] = []
        for t, s in self.samples:
            if t >= since and (not out or out[-1] != s[vip]):
                out.append(s[vip])
        return out

    def left(self, node: str, since: float) -> float | None:
        """Seconds after `since` at which `node` held none of the VIPs any more (for good)."""
        last_held = since
        for t, s in self.samples:
            if t >= since and any(node in nodes for nodes in s.values()):
                last_held = t
        after = [t for t, s in self.samples if t > last_held]
        return after[0] - since if after else None

    def first_held(self, vip: IPAddress, by: str, since: float) -> float | None:
        """The first instant after `since` at which `by` carried `vip`."""
        return next((t for t, s in self.samples if t >= since and by in s[vip]), None)

    def check(self) -> None:
        assert self.error is None, f"the node watcher died: {self.error!r}"
        assert self.samples, "the node watcher took no samples"
        doubles = self.doubles()
        assert not doubles, (
            f"{len(doubles)} samples saw a VIP on two nodes, first: {doubles[:3]}\n{self.e2e.fleet.logs(60)}"
        )

    async def __aenter__(self) -> NodeWatcher:
        self._thread = threading.Thread(target=self.run, daemon=True, name="node-watcher")
        self._thread.start()
        # The block's failover starts only once the nodes are being sampled: opening a netlink socket in
        # each node namespace forks, and on a loaded host that outlasted a whole graceful failover (the
        # watcher then "took no samples" and the block proved nothing).
        await asyncio.to_thread(self.sampled.wait, 60)
        assert self.error is None, f"the node watcher died: {self.error!r}"
        assert self.samples, "the node watcher took no sample within 60 s"
        return self

    async def __aexit__(self, exc_type: object, *exc: object) -> None:
        self.stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10)
        if exc_type is None:
            self.check()


def _holders_at(vip: IPAddress, reads: list[tuple[float, str, set[IPAddress]]]) -> frozenset[str]:
    """The nodes holding `vip` in one forward+backward sample: every node that has it in both its reads
    (surely held across the sample), plus, when one such node exists, any node that has it in a read
    taken between that node's two reads (surely held at the same time: a double). A node seen in only
    one read with nobody bracketing it is reported alone (a hand-over caught mid-way is no double)."""
    seen: dict[str, list[tuple[float, bool]]] = {}
    for t, name, addrs in reads:
        seen.setdefault(name, []).append((t, vip in addrs))
    sure = {n for n, rs in seen.items() if all(h for _, h in rs)}
    out = set(sure)
    for n in sure:
        lo, hi = seen[n][0][0], seen[n][-1][0]
        out |= {m for m, rs in seen.items() if any(h and lo < t < hi for t, h in rs)}
    if not out:  # held by nobody for sure: report who had it at all (a single holder mid-change)
        held = {n for n, rs in seen.items() if any(h for _, h in rs)}
        out = held if len(held) == 1 else set()
    return frozenset(out)


class E2E:
    """One test's view: its namespace, its agents, and probes of nodes, client and API."""

    def __init__(self, lab: LabNetwork, cp: ControlPlane, api: client.ApiClient, ns: str, tmp: Path) -> None:
        self.lab = lab
        self.cp = cp
        self.api = api
        self.core = client.CoreV1Api(api)
        self.ns = ns
        # Election timings a little above the defaults: the suite runs on busy 2-core machines next to
        # other control planes; a starved agent must not look dead. Behaviour is the same, only slower.
        self.fleet = Fleet(
            lab,
            node_kubeconfig(cp, lab),
            tmp,
            {
                "svc_namespace": ns,
                "vip_leasenamespace": ns,
                "vip_leaseduration": "4",
                "vip_renewdeadline": "3",
                "vip_retryperiod": "0.5",
            },
        )
        self.nodes = lab.nodes
        self.families: tuple[int, ...] = lab.families
        self._pod_n = 0
        self._vip_n = 0

    # -- set-up ---------------------------------------------------------------------------------
    def start_agents(self, **env: str) -> None:
        self.fleet.extra_env.update(env)
        self.fleet.start()

    def vip(self, family: int) -> IPAddress:
        """A fresh VIP of the lab pool (unique within the test session)."""
        return self.lab.vip(family, next(_VIP_COUNTER) % 50)

    async def service(
        self,
        name: str,
        vips: list[IPAddress] | str,
        *,
        families: tuple[str, ...] = ("IPv4",),
        policy: str = "SingleStack",
        etp: str = "Cluster",
        ports: tuple[tuple[str, int], ...] = (("TCP", RESPONDER_PORT),),
        annotations: dict[str, str] | None = None,
        selector: str | None = None,
        lb_class: str | None = None,
        allow_no_endpoints: bool = True,
    ) -> dict[str, Any]:
        # Responders stand in for pods without EndpointSlices: kube-vip's opt-in announces such a
        # Cluster Service anyway (False: test that rule).
        ann = dict(annotations or {})
        if allow_no_endpoints and etp == "Cluster":
            ann.setdefault("kube-vip.io/allow-reconcile-without-endpoints", "true")
        ann["kube-vip.io/loadbalancerIPs"] = vips if isinstance(vips, str) else ",".join(map(str, vips))
        body = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "annotations": ann},
            "spec": {
                "type": "LoadBalancer",
                "ipFamilies": list(families),
                "ipFamilyPolicy": policy,
                "externalTrafficPolicy": etp,
                "selector": {"app": selector or name},
                "ports": [
                    {"name": f"{p.lower()}-{n}", "protocol": p, "port": n, "targetPort": n} for p, n in ports
                ],
                "allocateLoadBalancerNodePorts": False,
            },
        }
        if lb_class:
            body["spec"]["loadBalancerClass"] = lb_class
        out = await self.core.create_namespaced_service(self.ns, body)
        return self.api.sanitize_for_serialization(out)  # type: ignore[no-any-return]

    async def pod(
        self, app: str, node: str, families: tuple[int, ...] | None = None, name: str | None = None
    ) -> str:
        """A Ready Pod object on `node` with one address per family (default: the lab's families)."""
        families = self.families if families is None else families
        self._pod_n += 1
        k = self._pod_n
        ips: list[IPAddress] = []
        for f in families:
            ips.append(
                ipaddress.ip_address(
                    f"10.244.{k % 250}.{10 + k % 200}"
                    if f == 4
                    else f"fd00:10:244:{k % 250:x}::{10 + k % 200:x}"
                )
            )
        pname = name or f"{app}-{k}"
        await pods.create_pod(
            self.api,
            self.ns,
            pname,
            node,
            {"app": app},
            ips,
            ready=True,
            ports=(("p", RESPONDER_PORT, "TCP"),),
        )
        return pname

    # -- probes ---------------------------------------------------------------------------------
    def _owned(self) -> dict[str, set[IPAddress]]:
        return {
            n.name: {a for a, _ in AddressManager(n.interface, Netns(n.netns)).owned()} for n in self.nodes
        }

    async def owned(self) -> dict[str, set[IPAddress]]:
        """Per node, the VIPs kubevip owns on its interface."""
        return await asyncio.to_thread(self._owned)

    def watch(self, *vips: IPAddress) -> NodeWatcher:
        """`async with e2e.watch(v4, v6) as w:` samples every node during a failover and fails the test
        on any instant with a VIP on two nodes (NodeWatcher)."""
        return NodeWatcher(self, tuple(vips))

    async def holders(self, vip: IPAddress) -> set[str]:
        return {n for n, addrs in (await self.owned()).items() if vip in addrs}

    async def reach(self, vip: IPAddress, proto: str = "TCP", wait: float = 1.0) -> str | None:
        """Ask the VIP from the client namespace; the answer is the name of the node that took it."""
        fam = socket.AF_INET if vip.version == 4 else socket.AF_INET6
        kind = socket.SOCK_STREAM if proto == "TCP" else socket.SOCK_DGRAM
        s = Netns(self.lab.client.netns).socket(fam, kind)
        s.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            if proto == "TCP":
                await bounded(loop.sock_connect(s, (str(vip), RESPONDER_PORT)), wait)
                data = await bounded(loop.sock_recv(s, 100), wait)
            else:
                await loop.sock_sendto(s, b"?", (str(vip), RESPONDER_PORT))
                data = await bounded(loop.sock_recv(s, 100), wait)
            return data.decode().strip() or None
        except (OSError, TimeoutError):
            return None
        finally:
            s.close()

    async def ingress(self, name: str) -> list[tuple[str, str | None]]:
        svc = await self.core.read_namespaced_service_status(name, self.ns)
        got = [(i.ip, i.ip_mode) for i in (svc.status.load_balancer.ingress or [])]
        if not versions.keeps_ip_mode(self.cp.server_version()):
            # Kubernetes 1.29 drops the ipMode the agent writes (LoadBalancerIPMode is alpha there): it
            # must be absent, and then stands for the "VIP" the agent always writes.
            got = [(ip, "VIP" if mode is None else f"unexpected {mode}") for ip, mode in got]
        return got

    async def vip_host(self, name: str) -> str | None:
        svc = await self.core.read_namespaced_service(name, self.ns)
        return (svc.metadata.annotations or {}).get("kube-vip.io/vipHost")

    async def events(self, name: str | None = None) -> list[tuple[str, str, str]]:
        """Events the agents wrote (the API server's own controllers write some too)."""
        evs = await self.core.list_namespaced_event(self.ns)
        return [
            (e.type, e.reason, e.message)
            for e in evs.items
            if (name is None or e.involved_object.name == name) and e.reporting_component == "kube-vip"
        ]

    async def eventually(self, probe: Callable[[], Awaitable[T] | T], what: str, within: float = 60.0) -> T:
        """Poll `probe` until truthy; fail naming `what`, the last value and the agents' logs."""
        return await eventually(probe, what, within, detail=self.fleet.logs)

    async def renewals(self, lease: str, who: str, count: int) -> None:
        """Wait until `who` renewed the Lease `count` more times (distinct renewTimes seen), holding it
        throughout (a renewal is the election's clock: "this long and nothing changed")."""
        seen: set[object] = set()

        async def probe() -> bool:
            got = await client.CoordinationV1Api(self.api).read_namespaced_lease(lease, self.ns)
            assert got.spec.holder_identity == who, f"{got.spec.holder_identity} took the Lease from {who}"
            seen.add(got.spec.renew_time)
            return len(seen) > count

        await self.eventually(probe, f"{count} renewals of {lease} by {who}")

    async def delete_service(self, name: str) -> None:
        try:
            await self.core.delete_namespaced_service(name, self.ns)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def cleanup(self) -> None:
        self.fleet.stop()
        for n in self.nodes:
            AddressManager(n.interface, Netns(n.netns), proto=ADDRESS_PROTO).cleanup_stale([])


@pytest.fixture
async def e2e(
    lab_network: LabNetwork,
    control_plane: ControlPlane,
    lab_responders: dict[str, int],
    kube_admin: client.ApiClient,
    kube_namespace: str,
    tmp_path: Path,
) -> AsyncIterator[E2E]:
    env = E2E(lab_network, control_plane, kube_admin, kube_namespace, tmp_path)
    try:
        yield env
    finally:
        await asyncio.to_thread(env.cleanup)


class StackLabs:
    """The lab network of each `--stack`, sharing the session control plane: `dual` is the session lab;
    `ipv4` and `ipv6` start on first use (a few seconds each) and live until the session ends.

    One control plane serves all three: what differs on a single-stack cluster for the agent is its
    node (no address, route or interface of the other family), and a Service of one family is the same
    object on a dual-stack API server. The labs share node names (node1..), so the Node objects carry the
    addresses of the lab whose test runs (`use`)."""

    def __init__(
        self, cp: ControlPlane, dual: LabNetwork, tmp: pytest.TempPathFactory
    ) -> None:
        self.cp = cp
        self.tmp = tmp
        self.labs: dict[str, LabNetwork] = {"dual": dual}
        self.responders: dict[str, dict[str, int]] = {}

    def get(self, stack: str) -> LabNetwork:
        if stack not in self.labs:
            lab = LabNetwork(
                f"t{secrets.token_hex(3)}", nodes=3, state_dir=self.tmp.mktemp(f"lab-{stack}"),
                reap_with_owner=True, stack=stack,
            )
            self.labs[stack] = lab
            lab.up()
            connect_network(self.cp, lab)
            self.responders[stack] = start_responders(lab, self.tmp.mktemp(f"responders-{stack}"))
        return self.labs[stack]

    async def use(self, stack: str) -> LabNetwork:
        """The lab of `stack`, its nodes registered as the Node objects."""
        lab = await asyncio.to_thread(self.get, stack)
        await register_nodes(self.cp, lab)
        return lab

    def close(self) -> None:
        for pids in self.responders.values():
            stop_responders(pids)
        for stack, lab in self.labs.items():
            if stack != "dual":  # the session lab's own fixture removes it
                lab.down()


@pytest.fixture(scope="session")
def stack_labs(
    control_plane: ControlPlane,
    lab_network: LabNetwork,
    lab_responders: dict[str, int],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[StackLabs]:
    labs = StackLabs(control_plane, lab_network, tmp_path_factory)
    try:
        yield labs
    finally:
        labs.close()


@pytest.fixture(params=tuple(STACKS))
async def e2e_stack(
    request: pytest.FixtureRequest,
    stack_labs: StackLabs,
    control_plane: ControlPlane,
    kube_admin: client.ApiClient,
    kube_namespace: str,
    tmp_path: Path,
) -> AsyncIterator[E2E]:
    """`e2e` on the lab of each stack (dual, ipv4, ipv6): the family-relevant tests (docs/testing.md)."""
    lab = await stack_labs.use(request.param)
    env = E2E(lab, control_plane, kube_admin, kube_namespace, tmp_path)
    try:
        yield env
    finally:
        await asyncio.to_thread(env.cleanup)
        if request.param != "dual":  # tests on the session lab expect its own Node addresses back
            await stack_labs.use("dual")
