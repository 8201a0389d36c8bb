"""Agents in BGP mode in the lab, as the router sees them (gobgpd, bird2, FRR).

Per daemon, with three agents (`kubevip manager`, bgp_enable) peered with the lab router:
- create: dual-stack Cluster Service created -> its prefix in the router's RIB, per family;
- answer: same Service -> the bgp_client (behind the router) gets an answer (daemons that program the
  kernel only);
- delete: Service deleted -> prefixes gone from the RIB;
- move: ETP Local, the only pod re-created on another node -> the RIB's next hop is that node;
- crash: SIGKILL of the agent announcing a Cluster VIP -> the RIB names another node (session down on
  the killed node, Lease expiry, takeover, announcement).
The RIB is polled through the daemon's CLI (each figure includes up to one poll). JSON goes to
bench/results/bgp_agent.json; a table is printed. Needs root.

Usage: python bench/bgp_agent.py [--daemons bird2,gobgpd,frr] [--runs 10] [--lease 6,4,0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from distribution import summarize
from kubernetes_asyncio import client
from polling import until

from kubevip.errors import BgpError
from kubevip.lab import pods
from kubevip.lab.agents import RESPONDER_PORT, Fleet, start_responders, stop_responders
from kubevip.lab.bgp import LabBgp
from kubevip.lab.client import api_client
from kubevip.lab.controlplane import ControlPlane
from kubevip.lab.instance import find_bin_dir as bin_dir
from kubevip.lab.network import LabNetwork
from kubevip.lab.routers import Rib, Router
from kubevip.lab.stack import connect_network, node_kubeconfig
from kubevip.manifests import rbac
from kubevip.net.addresses import AddressManager
from kubevip.net.namespace import Netns

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "bgp_agent.json"
NS = "bench-bgp"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def summary(values: list[float]) -> dict[str, float | int | None]:
    """This benchmark's JSON for one figure ({"runs": 0} when nothing was measured)."""
    s = summarize(values, p95="nearest-rank")
    return s.as_dict(("runs", "median", "p95", "min", "max")) if s.n else {"runs": 0}


async def retried(call: Callable[[], Awaitable[Any]], done: tuple[int, ...] = (409, 404)) -> Any:
    """An API call retried on 5xx / 429: a loaded API server must not end the benchmark. A retried
    create may meet its own earlier success (409), a retried delete likewise (404)."""
    for attempt in range(20):
        try:
            return await call()
        except client.ApiException as exc:
            if attempt and exc.status in done:
                return None
            if exc.status not in (429, 500, 502, 503, 504) or attempt == 19:
                raise
            await asyncio.sleep(0.5)
    return None


class Bench:
    def __init__(self, lab: LabNetwork, bgp: LabBgp, api: client.ApiClient, fleet: Fleet) -> None:
        self.lab = lab
        self.bgp = bgp
        router = bgp.reader()
        assert router is not None
        self.router: Router = router
        self.api = api
        self.core = client.CoreV1Api(api)
        self.fleet = fleet
        self._n = 0
        self.hop = {n.name: {4: n.ipv4, 6: n.ipv6} for n in lab.nodes}

    def vip(self, family: int) -> IPAddress:
        self._n += 1
        return self.lab.vip(family, self._n % 50)

    async def rib(self) -> Rib:
        with contextlib.suppress(BgpError):
            return {**await self.router.rib(4), **await self.router.rib(6)}
        return {}

    async def hops(self, vip: IPAddress) -> frozenset[Any]:
        return (await self.rib()).get(ipaddress.ip_network(vip), frozenset())

    async def service(self, name: str, vips: list[IPAddress], etp: str = "Cluster") -> None:
        fams = ["IPv4" if v.version == 4 else "IPv6" for v in vips]
        ann = {"kube-vip.io/loadbalancerIPs": ",".join(map(str, vips))}
        if etp == "Cluster":  # responders, no EndpointSlices: kube-vip's opt-in to announce anyway
            ann["kube-vip.io/allow-reconcile-without-endpoints"] = "true"
        port = {"name": "p", "protocol": "TCP", "port": RESPONDER_PORT, "targetPort": RESPONDER_PORT}
        await retried(lambda: self.core.create_namespaced_service(NS, {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "annotations": ann},
            "spec": {
                "type": "LoadBalancer", "ipFamilies": fams,
                "ipFamilyPolicy": "PreferDualStack" if len(vips) > 1 else "SingleStack",
                "externalTrafficPolicy": etp, "selector": {"app": name},
                "allocateLoadBalancerNodePorts": False, "ports": [port],
            },
        }))

    async def create_delete(self, runs: int) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {"create_ipv4": [], "create_ipv6": [], "answer_ipv4": [],
                                       "answer_ipv6": [], "delete": []}
        for i in range(runs):
            v4, v6 = self.vip(4), self.vip(6)
            t0 = time.monotonic()
            await self.service(f"cd-{i}", [v4, v6])
            for fam, vip in (("ipv4", v4), ("ipv6", v6)):
                await until(lambda vip=vip: self.hops(vip), 30, f"{vip} in the RIB")
                out[f"create_{fam}"].append(time.monotonic() - t0)
            if self.router.installs_routes:
                for fam, vip in (("ipv4", v4), ("ipv6", v6)):
                    await until(lambda vip=vip: asyncio.to_thread(self.bgp.probe, vip, RESPONDER_PORT, 0.2),
                                30, f"bgp_client reaches {vip}")
                    out[f"answer_{fam}"].append(time.monotonic() - t0)
            t1 = time.monotonic()
            await retried(lambda i=i: self.core.delete_namespaced_service(f"cd-{i}", NS))

            async def gone(v4: IPAddress = v4, v6: IPAddress = v6) -> bool:
                rib = await self.rib()
                return ipaddress.ip_network(v4) not in rib and ipaddress.ip_network(v6) not in rib

            await until(gone, 30, "deleted Service withdrawn")
            out["delete"].append(time.monotonic() - t1)
        return out

    async def pod_moves(self, runs: int) -> list[float]:
        nodes = [n.name for n in self.lab.nodes]
        vip = self.vip(4)
        await retried(lambda: pods.create_pod(self.api, NS, "mv", nodes[0], {"app": "mv"},
                                              [ipaddress.ip_address("10.244.9.9")], ready=True,
                                              ports=(("p", RESPONDER_PORT, "TCP"),)))
        await self.service("mv", [vip], etp="Local")
        await until(lambda: self._hop_is(vip, nodes[0]), 30, "Local VIP from the pod's node")
        out = []
        for i in range(runs):
            dst = nodes[(i + 1) % len(nodes)]
            t0 = time.monotonic()
            await retried(lambda dst=dst: pods.move_pod(self.api, NS, "mv", dst))
            await until(lambda dst=dst: self._hop_is(vip, dst), 30, f"RIB follows the pod to {dst}")
            out.append(time.monotonic() - t0)
        await retried(lambda: self.core.delete_namespaced_service("mv", NS))
        await retried(lambda: pods.delete_pod(self.api, NS, "mv"))
        return out

    async def _hop_is(self, vip: IPAddress, node: str) -> bool:
        return await self.hops(vip) == frozenset({self.hop[node][vip.version]})

    async def crashes(self, runs: int) -> list[float]:
        out = []
        for i in range(runs):
            vip = self.vip(4)
            await self.service(f"cr-{i}", [vip])
            first = await until(lambda vip=vip: self.hops(vip), 30, "announced")
            (hop,) = first
            victim = next(n for n, h in self.hop.items() if h[4] == hop)
            agent = self.fleet.agents[victim]
            t0 = time.monotonic()
            agent.signal(signal.SIGKILL)

            async def moved(vip: IPAddress = vip, hop: Any = hop) -> bool:
                hops = await self.hops(vip)
                return bool(hops) and hop not in hops

            await until(moved, 60, "another node announces")
            out.append(time.monotonic() - t0)
            await asyncio.to_thread(agent.kill)
            await asyncio.to_thread(
                AddressManager("lo", Netns(self.lab.node(victim).netns)).cleanup_stale, []
            )
            agent.start(self.lab)
            await retried(lambda i=i: self.core.delete_namespaced_service(f"cr-{i}", NS))
        return out


async def run_daemon(
    daemon: str, runs: int, work: Path, cp: ControlPlane, timings: dict[str, str]
) -> dict[str, Any]:
    lab = LabNetwork(f"bb{secrets.token_hex(2)}", nodes=3, state_dir=work / f"lab-{daemon}")
    responders: dict[str, int] = {}
    bgp = LabBgp(lab, work / f"lab-{daemon}")
    lab.up()
    try:
        connect_network(cp, lab)
        bgp.up(daemon)
        responders = start_responders(lab, work)
        api = await api_client(cp.admin_kubeconfig)
        fleet = Fleet(lab, node_kubeconfig(cp, lab), work,
                      {"svc_namespace": NS, "vip_leasenamespace": NS, "prometheus_server": "",
                       **bgp.agent_env(), **timings})
        try:
            with contextlib.suppress(client.ApiException):
                await client.CoreV1Api(api).create_namespace({"metadata": {"name": NS}})
            with contextlib.suppress(client.ApiException):  # the Lease RoleBinding (manifests/rbac.py)
                await client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(
                    NS, rbac.namespaced_binding(NS))
            fleet.start()
            b = Bench(lab, bgp, api, fleet)
            # Warm-up: agents synced, every session established, first Service through the pipeline.
            warm = b.vip(4)
            await b.service("warm-up", [warm])
            await until(lambda: b.hops(warm), 120, "warm-up Service in the RIB")
            await retried(lambda: b.core.delete_namespaced_service("warm-up", NS))
            res: dict[str, Any] = {"installs_routes": b.router.installs_routes}
            res.update({k: summary(v) for k, v in (await b.create_delete(runs)).items()})
            res["pod_move"] = summary(await b.pod_moves(runs))
            res["crash"] = summary(await b.crashes(max(1, runs // 2)))
            return res
        except BaseException:
            print(fleet.logs(), file=sys.stderr)
            raise
        finally:
            await asyncio.to_thread(fleet.stop)
            for n in lab.nodes:
                await asyncio.to_thread(AddressManager("lo", Netns(n.netns)).cleanup_stale, [])
            await api.close()
    finally:
        stop_responders(responders)
        bgp.down()
        lab.down()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="kubevip-bench-bgp-agent-"))
    cp = ControlPlane(bin_dir(), work / "cp", bind_address=ipaddress.IPv4Address("0.0.0.0"))
    cp.start()
    try:
        lease, renew, retry = args.lease.split(",")
        timings = {"vip_leaseduration": lease, "vip_renewdeadline": renew, "vip_retryperiod": retry}
        daemons: dict[str, Any] = {}
        for d in args.daemons:
            try:
                daemons[d] = await run_daemon(d, args.runs, work, cp, timings)
            except Exception as exc:  # one daemon's failure still leaves the others' figures
                daemons[d] = {"error": repr(exc)}
        return {"runs": args.runs, "election": timings, "daemons": daemons}
    finally:
        cp.stop()
        shutil.rmtree(work, ignore_errors=True)  # the control plane's etcd and the lab: 60+ MB a run


def table(r: dict[str, Any]) -> str:
    rows = ["| daemon | measure | median | p95 | max | runs |", "|---|---|---|---|---|---|"]
    labels = [
        ("create_ipv4", "Service created -> IPv4 prefix in RIB"),
        ("create_ipv6", "Service created -> IPv6 prefix in RIB"),
        ("answer_ipv4", "Service created -> bgp_client answered, IPv4"),
        ("answer_ipv6", "Service created -> bgp_client answered, IPv6"),
        ("delete", "Service deleted -> both prefixes gone"),
        ("pod_move", "ETP Local pod moved -> RIB next hop follows"),
        ("crash", "SIGKILL of the announcing agent -> RIB names another node"),
    ]
    for daemon, res in r["daemons"].items():
        for key, label in labels:
            s = res.get(key, {})
            if not s.get("runs"):
                continue
            rows.append(f"| {daemon} | {label} | {s['median']:.3f} s | {s['p95']:.3f} s | {s['max']:.3f} s "
                        f"| {s['runs']} |")
    return "\n".join(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--daemons", default="bird2,gobgpd,frr")
    p.add_argument("--runs", type=int, default=10)
    # The lab's 1.5 s Leases lapse on an overloaded machine (then nothing is announced at all); the
    # default keeps the election out of the figures except for the crash takeover.
    p.add_argument("--lease", default="6,4,0.5", help="vip_leaseduration,vip_renewdeadline,vip_retryperiod")
    args = p.parse_args()
    args.daemons = [d for d in args.daemons.split(",") if d]
    result = asyncio.run(main_async(args))
    result["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result["load_average"] = os.getloadavg()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    print(f"\nJSON: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
