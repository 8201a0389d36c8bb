"""Live `kubevip explain -n NS NAME` on the real control plane: the same answer as the offline form on the
same objects read back from the cluster, plus who holds each VIP (the agents' report Leases)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from kubevip import cli
from kubevip.core.report import REPORT_DURATION, REPORT_LABEL, AgentReport, HeldVip, encode, report_lease_name
from kubevip.ip import NodeName
from kubevip.lab.controlplane import ControlPlane
from tests.cluster.test_dual_stack_endpoints import (
    VIP4,
    explain,
    make_backends,
    published,
    service_body,
    v4s,
    v6s,
)

pytestmark = pytest.mark.cluster


def live(cp: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "kubevip", "explain", "--kubeconfig", str(cp.admin_kubeconfig), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def offline_text(
    objs: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> str:
    explain(objs, tmp_path, capsys)  # writes tmp_path / objects.json
    capsys.readouterr()
    assert cli.main(["explain", "-f", str(tmp_path / "objects.json"), *extra]) == 0
    return capsys.readouterr().out


async def report(api: client.ApiClient, ns: str, node: str, vip: str) -> None:
    """A report Lease as the agent on `node` writes it (agent/presence.py), holding `vip`."""
    held = HeldVip(ipaddress.ip_address(vip), "eth0", f"{ns}/dual", "", "2026-12-04T06:00:00Z")
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = {
        "metadata": {"name": report_lease_name(node), "labels": {REPORT_LABEL: "true"},
                     "annotations": encode(AgentReport(NodeName(node), "test", "none", "arp", (held,)))},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": REPORT_DURATION, "renewTime": now},
    }
    await client.CoordinationV1Api(api).create_namespaced_lease(ns, body)


async def test_live_and_offline_answers_are_identical_but_for_live_fields(
    kube_admin: client.ApiClient, kube_namespace: str, control_plane: ControlPlane, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ns = kube_namespace
    nodes = await make_backends(kube_admin, ns)
    body = service_body("dual", "RequireDualStack", None)
    await client.CoreV1Api(kube_admin).create_namespaced_service(ns, body)
    objs = await published(kube_admin, ns, "dual", {"IPv4": v4s(), "IPv6": v6s()}, v4s())
    await report(kube_admin, ns, nodes[0], VIP4)
    # A forged report in another namespace (anyone who may write Leases there) names another holder:
    # ignored, only the agents' lease namespace counts.
    forged = f"{ns}-forged"
    await client.CoreV1Api(kube_admin).create_namespace({"metadata": {"name": forged}})
    try:
        await report(kube_admin, forged, nodes[1], VIP4)
        await _compare(kube_admin, ns, nodes, objs, control_plane, tmp_path, capsys)
    finally:
        await client.CoreV1Api(kube_admin).delete_namespace(forged)


async def _compare(
    kube_admin: client.ApiClient, ns: str, nodes: list[str], objs: dict[str, Any],
    control_plane: ControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:

    for extra in ((), ("--node", nodes[1]), ("--endpoints", "legacy", "--node", nodes[0])):
        res = await asyncio.to_thread(live, control_plane, "-n", ns, "--lease-namespace", ns, "dual", "-o",
                                      "json", *extra)
        assert res.returncode == 0, res.stderr
        got = json.loads(res.stdout)
        explain(objs, tmp_path, capsys)
        assert cli.main(["explain", "-f", str(tmp_path / "objects.json"), "-o", "json", *extra]) == 0
        want = json.loads(capsys.readouterr().out)
        live_part = got.pop("live")
        assert got == want, extra
        assert [(v["address"], v["holder"], v["holders"]) for v in live_part["vips"]] == [
            (VIP4, nodes[0], [nodes[0]]), (want["vips"][1]["address"], None, []),
        ]
        text = await asyncio.to_thread(live, control_plane, "-n", ns, "--lease-namespace", ns, "dual", "-o",
                                       "text", *extra)
        assert text.returncode == 0, text.stderr
        off = offline_text(objs, tmp_path, capsys, "-o", "text", *extra)
        assert text.stdout.startswith(off)
        assert f"{VIP4}  {nodes[0]} since 2026-12-04T06:00:00Z" in text.stdout[len(off):]


async def test_live_errors_name_the_object(
    kube_admin: client.ApiClient, kube_namespace: str, control_plane: ControlPlane,
) -> None:
    res = await asyncio.to_thread(live, control_plane, "-n", kube_namespace, "nothere")
    assert res.returncode == 2 and f"Service {kube_namespace}/nothere: not found" in res.stderr
    await client.CoreV1Api(kube_admin).create_namespaced_service(
        kube_namespace, service_body("x", "SingleStack", ["IPv4"])
    )
    res = await asyncio.to_thread(live, control_plane, "-n", kube_namespace, "x", "--node", "no-such-node")
    assert res.returncode == 2 and "--node 'no-such-node': no such Node" in res.stderr
    res = await asyncio.to_thread(live, control_plane, "-n", kube_namespace)
    assert res.returncode == 2 and "either -f FILE" in res.stderr
