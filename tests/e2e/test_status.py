"""`kubevip status` against agents in the lab: the holder it names is the node that has the address on its
interface (read from the kernel of each node namespace), before and after a failover, in both election
modes; the unit's Lease it names is held by that node; Warnings and agents' liveness are reported."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from typing import Any

import pytest
from kubernetes_asyncio import client

from kubevip import __version__
from tests.e2e.conftest import E2E, IPAddress
from tests.e2e.test_lifecycle import _drop_owned

pytestmark = pytest.mark.e2e


async def status(e2e: E2E) -> dict[str, Any]:
    """`kubevip status -o json` as an operator runs it (a separate process, the admin kubeconfig)."""
    argv = [sys.executable, "-m", "kubevip", "status", "--kubeconfig", str(e2e.cp.admin_kubeconfig),
            "-n", e2e.ns, "--lease-namespace", e2e.ns, "-o", "json"]
    res = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


def vip_entry(doc: dict[str, Any], name: str, vip: IPAddress) -> dict[str, Any]:
    svc = next(s for s in doc["services"] if s["name"] == name)
    return next(v for v in svc["vips"] if v["address"] == str(vip))


async def agreement(e2e: E2E, name: str, vips: list[IPAddress]) -> dict[str, Any] | None:
    """The status document when, for every VIP, it names exactly the one node whose kernel has it."""
    doc = await status(e2e)
    owned = await e2e.owned()
    for vip in vips:
        kernel = sorted(n for n, addrs in owned.items() if vip in addrs)
        entry = vip_entry(doc, name, vip)
        if len(kernel) != 1 or entry["holder"] != kernel[0] or entry["holders"] != kernel:
            return None
    return doc


async def lease_holder(e2e: E2E, ref: str) -> str | None:
    ns, _, name = ref.partition("/")
    lease = await client.CoordinationV1Api(e2e.api).read_namespaced_lease(name, ns)
    return lease.spec.holder_identity  # type: ignore[no-any-return]


def node_entry(doc: dict[str, Any], node: str) -> dict[str, Any]:
    return next(n for n in doc["nodes"] if n["name"] == node)


@pytest.mark.parametrize("election", ["scalable", "lease"])
async def test_status_names_the_kernel_holder_through_a_failover(e2e: E2E, election: str) -> None:
    v4, v6 = e2e.vip(4), e2e.vip(6)
    await e2e.service("web", [v4, v6], families=("IPv4", "IPv6"), policy="PreferDualStack")
    e2e.start_agents(vip_electionmode=election, svc_election="true")
    async def agreed_all_up() -> dict[str, Any] | None:
        doc = await agreement(e2e, "web", [v4, v6])
        names = {n.name for n in e2e.nodes}
        return doc if doc is not None and all(n["up"] for n in doc["nodes"] if n["name"] in names) else None

    doc = await e2e.eventually(agreed_all_up, "status names the kernel's holders, every agent up")
    svc = next(s for s in doc["services"] if s["name"] == "web")
    assert svc["families"] == ["IPv4", "IPv6"]
    assert [v["family"] for v in svc["vips"]] == ["IPv4", "IPv6"]
    for vip in (v4, v6):
        entry = vip_entry(doc, "web", vip)
        assert entry["unit"] and entry["since"] and entry["lease"]
        # The unit's Lease (claim or kube-vip's per-Service Lease) is held by the node named.
        assert await lease_holder(e2e, entry["lease"]) == entry["holder"]
    for n in e2e.nodes:
        node = node_entry(doc, n.name)
        assert node["up"] is True and node["version"] == __version__ and node["election"] == election
        assert node["mode"] == "arp"
        assert sorted(node["vips"]) == sorted(
            str(v) for v in (v4, v6) if vip_entry(doc, "web", v)["holder"] == n.name
        )

    old = vip_entry(doc, "web", v4)["holder"]
    e2e.fleet.agents[old].stop()  # SIGTERM: withdraw, release, report no VIPs
    doc = await e2e.eventually(
        lambda: _moved(e2e, "web", [v4, v6], old), f"status follows the kernel after {old} stopped"
    )
    assert node_entry(doc, old)["up"] is False and node_entry(doc, old)["vips"] == []
    for vip in (v4, v6):
        entry = vip_entry(doc, "web", vip)
        assert entry["holder"] != old
        assert await lease_holder(e2e, entry["lease"]) == entry["holder"]


async def _moved(e2e: E2E, name: str, vips: list[IPAddress], old: str) -> dict[str, Any] | None:
    doc = await agreement(e2e, name, vips)
    if doc is None or any(vip_entry(doc, name, v)["holder"] == old for v in vips):
        return None
    return doc if node_entry(doc, old)["up"] is False else None


async def test_status_reports_warnings_and_text(e2e: E2E) -> None:
    v4 = e2e.vip(4)
    await e2e.service("half", f"{v4},web.example")
    e2e.start_agents()

    async def warned() -> dict[str, Any] | None:
        doc = await agreement(e2e, "half", [v4])
        if doc is None:
            return None
        svc = next(s for s in doc["services"] if s["name"] == "half")
        return svc if any(w["reason"] == "dns-name" for w in svc["warnings"]) else None

    svc = await e2e.eventually(warned, "status shows the holder and the dns-name Warning")
    w = next(w for w in svc["warnings"] if w["reason"] == "dns-name")
    assert "web.example" in w["message"] and w["node"] in {n.name for n in e2e.nodes}
    argv = [sys.executable, "-m", "kubevip", "status", "--kubeconfig", str(e2e.cp.admin_kubeconfig),
            "-n", e2e.ns, "--lease-namespace", e2e.ns]
    res = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    holder = svc["vips"][0]["holder"]
    line = next(ln for ln in res.stdout.splitlines() if str(v4) in ln and ln.startswith(f"{e2e.ns}/half"))
    assert holder in line.split()
    assert f"{e2e.ns}/half: dns-name:" in res.stdout
    # Live explain names the same holder, from the same reports.
    argv = [sys.executable, "-m", "kubevip", "explain", "--kubeconfig", str(e2e.cp.admin_kubeconfig),
            "-n", e2e.ns, "--lease-namespace", e2e.ns, "half", "-o", "json"]
    res = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert [(v["address"], v["holder"]) for v in doc["live"]["vips"]] == [(str(v4), holder)]
    assert doc["rejected"] == [{"address": "web.example", "reason": "dns-name"}]


async def _service_obj(e2e: E2E, name: str) -> dict[str, Any]:
    svc = await e2e.core.read_namespaced_service_status(name, e2e.ns)
    return e2e.api.sanitize_for_serialization(svc)  # type: ignore[no-any-return]


def _conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


async def test_family_conditions_and_vip_host_ipv6_follow_the_kernel(e2e: E2E) -> None:
    v4, v6 = e2e.vip(4), e2e.vip(6)
    await e2e.service("dual", [v4, v6], families=("IPv4", "IPv6"), policy="PreferDualStack")
    # Another controller's condition on the same Service must survive kubevip's writes.
    await e2e.core.patch_namespaced_service_status("dual", e2e.ns, {"status": {"conditions": [
        {"type": "example.com/Other", "status": "True", "reason": "Fine", "message": "x",
         "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
    e2e.start_agents()  # scalable: a unit per VIP, so the two families may land on two nodes

    async def settled() -> tuple[str, str, dict[str, Any]] | None:
        owned = await e2e.owned()
        h4 = [n for n, a in owned.items() if v4 in a]
        h6 = [n for n, a in owned.items() if v6 in a]
        if len(h4) != 1 or len(h6) != 1:
            return None
        obj = await _service_obj(e2e, "dual")
        conds = _conditions(obj)
        c4, c6 = conds.get("kube-vip.io/IPv4Announced"), conds.get("kube-vip.io/IPv6Announced")
        ann = obj["metadata"].get("annotations") or {}
        ok = (
            c4 is not None and c6 is not None
            and (c4["status"], c4["reason"], c4["message"]) == ("True", "Announced", f"{v4} announced")
            and (c6["status"], c6["reason"], c6["message"]) == ("True", "Announced", f"{v6} announced")
            and ann.get("kube-vip.io/vipHost") == h4[0]
            and ann.get("kube-vip.io/vipHost-ipv6") == (h6[0] if h6[0] != h4[0] else None)
        )
        return (h4[0], h6[0], obj) if ok else None

    *_, obj = await e2e.eventually(settled, "one True condition per family naming the kernel holders")
    assert "example.com/Other" in _conditions(obj)
    since4 = _conditions(obj)["kube-vip.io/IPv4Announced"]["lastTransitionTime"]
    assert since4

    # The IPv6 VIP goes: its family stays served (PreferDualStack) and says why nothing is announced.
    await e2e.core.patch_namespaced_service(
        "dual", e2e.ns, {"metadata": {"annotations": {"kube-vip.io/loadbalancerIPs": str(v4)}}}
    )

    async def ipv6_false() -> dict[str, Any] | None:
        obj = await _service_obj(e2e, "dual")
        c6 = _conditions(obj).get("kube-vip.io/IPv6Announced") or {}
        if (c6.get("status"), c6.get("reason")) != ("False", "NoVipForFamily"):
            return None
        ann = obj["metadata"].get("annotations") or {}
        return obj if "kube-vip.io/vipHost-ipv6" not in ann else None

    obj = await e2e.eventually(ipv6_false, "IPv6Announced False (NoVipForFamily), vipHost-ipv6 gone")
    c4 = _conditions(obj)["kube-vip.io/IPv4Announced"]
    assert (c4["status"], c4["lastTransitionTime"]) == ("True", since4)  # no transition, no new time
    assert "example.com/Other" in _conditions(obj)
    assert _conditions(obj)["kube-vip.io/IPv6Announced"]["message"].endswith("[no-vip-for-family]")


async def test_status_after_a_crash_names_the_successor(e2e: E2E) -> None:
    """SIGKILL: the dead agent withdraws nothing and its report stays fresh for a while; the holder named
    is still the node whose kernel has the address (the successor), and the dead node goes down."""
    vip = e2e.vip(4)
    await e2e.service("crash", [vip])
    e2e.start_agents()
    doc = await e2e.eventually(lambda: agreement(e2e, "crash", [vip]), "status names the kernel's holder")
    old = vip_entry(doc, "crash", vip)["holder"]
    e2e.fleet.agents[old].signal(signal.SIGKILL)
    e2e.fleet.agents[old].kill()
    await asyncio.to_thread(_drop_owned, e2e, old)  # a crashed node's addresses vanish with it

    async def successor() -> dict[str, Any] | None:
        doc = await agreement(e2e, "crash", [vip])
        return doc if doc is not None and vip_entry(doc, "crash", vip)["holder"] != old else None

    doc = await e2e.eventually(successor, f"status names the node that took {vip} from {old}")
    entry = vip_entry(doc, "crash", vip)
    assert await lease_holder(e2e, entry["lease"]) == entry["holder"]

    async def old_down() -> dict[str, Any] | None:
        doc = await status(e2e)
        return doc if node_entry(doc, old)["up"] is False else None

    doc = await e2e.eventually(old_down, f"{old} reported down once its report expired", within=90.0)
    assert node_entry(doc, old)["vips"] == []
    assert vip_entry(doc, "crash", vip)["holders"] == [vip_entry(doc, "crash", vip)["holder"]]
