"""The README's main job: `kubevip lab up` runs an agent in every node namespace and the demo Service
answers at the client on both families; `lab status -o json` says each agent runs; `down` stops them.
With `--stack ipv4|ipv6` everything has that one family only."""

from __future__ import annotations

import ipaddress
import json
import secrets
import subprocess
from pathlib import Path

import pytest

from kubevip.lab.agents import alive, recorded
from kubevip.lab.controlplane import ControlPlane
from kubevip.lab.instance import LabInstance
from tests.fixtures.cluster import control_plane_bin_dir
from tests.fixtures.prereqs import require_root_netns

pytestmark = pytest.mark.e2e


def test_lab_up_demo_answers_on_both_families(tmp_path: Path) -> None:
    require_root_netns()
    bin_dir = control_plane_bin_dir()
    lab = LabInstance(f"d{secrets.token_hex(3)}", tmp_path / "state")
    try:
        lines = lab.up(nodes=3, bin_dir=bin_dir)
        answered = [line for line in lines if line.startswith("client -> ")]
        assert len(answered) == 2, lines  # lab_up raises if a family does not answer
        doc = lab.status()
        agents = [n["agent"] for n in doc["nodes"]]
        assert all(a["running"] and isinstance(a["pid"], int) for a in agents), agents
        for a in agents:  # as the rendered DaemonSet says (lab/podrun.py; tests/e2e/test_pod_runtime.py)
            status = Path(f"/proc/{a['pid']}/status").read_text()
            assert f"CapEff:\t{(1 << 12) | (1 << 13):016x}" in status, status
            environ = Path(f"/proc/{a['pid']}/environ").read_bytes().split(b"\0")
            assert not [e for e in environ if e.startswith(b"KUBECONFIG=")]
            assert [e for e in environ if e.startswith(b"KUBERNETES_SERVICE_HOST=")]
        rotators = [p["token"] for p in recorded(lab.state_dir).values()]
        assert len(rotators) == 3 and all(alive(p) for p in rotators)
        again = lab.up(nodes=3, bin_dir=bin_dir)
        assert sum(line.startswith("agent on") and "already running" in line for line in again) == 3, again
        pids = [a["pid"] for a in agents]
    finally:
        removed = lab.down()
    assert sum(line.startswith("stopped agent") for line in removed) == 3, removed
    assert not any(alive(p) for p in [*pids, *rotators])


@pytest.mark.parametrize(("stack", "family", "other"), [("ipv4", 4, 6), ("ipv6", 6, 4)])
def test_single_stack_lab_has_only_its_family(tmp_path: Path, stack: str, family: int, other: int) -> None:
    """`lab up --stack ipv4|ipv6`: the demo answers on the lab's family; no lab namespace has an address
    of the other family (IPv4-only: not even link-local IPv6); Nodes and status JSON say the same."""
    require_root_netns()
    bin_dir = control_plane_bin_dir()
    lab = LabInstance(f"s{secrets.token_hex(3)}", tmp_path / "state")
    netns: list[str] = []
    try:
        lines = lab.up(nodes=2, bin_dir=bin_dir, stack=stack)
        answered = [line for line in lines if line.startswith("client -> ")]
        assert len(answered) == 1, lines  # lab_up raises if the family does not answer
        doc = lab.status()
        fam, missing = f"ipv{family}", f"ipv{other}"
        assert doc["stack"] == stack
        vip = ipaddress.ip_address(doc["demo"][fam])
        assert vip.version == family and answered[0].startswith(f"client -> {vip}:"), answered
        for key in ("subnets", "vip_pool", "uplink", "client", "ipam_pool", "demo"):
            assert doc[key][missing] is None and doc[key][fam] is not None, (key, doc[key])
        assert all(n[missing] is None and n[fam] is not None for n in doc["nodes"]), doc["nodes"]
        assert all(n["agent"]["running"] for n in doc["nodes"]), doc["nodes"]
        # The in-lab API server address is of the lab's family (IPv6-only: over the uplink's IPv6).
        uplink = ipaddress.ip_address(doc["uplink"][fam])
        assert doc["in_lab"]["server"].startswith(f"https://{format_host(uplink)}:"), doc["in_lab"]

        netns = [n["netns"] for n in doc["nodes"]] + [doc["client"]["netns"], f"kvl-{lab.lab_id}-br"]
        for ns in netns:
            assert _addresses(ns, other) == [], ns
            assert _addresses(ns, family) != [] or ns.endswith("-br"), ns
        assert _addresses(None, other, dev=doc["uplink"]["interface"]) == []

        cp = ControlPlane.load(lab.state_dir)
        nodes = json.loads(cp.kubectl_run("get", "nodes", "-o", "json"))["items"]
        internal = [a["address"] for n in nodes for a in n["status"]["addresses"]
                    if a["type"] == "InternalIP"]
        assert sorted(internal) == sorted(n[fam] for n in doc["nodes"]), internal
        assert all(ipaddress.ip_network(c).version == family for n in nodes for c in n["spec"]["podCIDRs"])
        svc = json.loads(cp.kubectl_run("get", "service", "demo", "-o", "json"))["spec"]
        assert svc["ipFamilies"] == [f"IPv{family}"] and svc["ipFamilyPolicy"] == "SingleStack", svc
        assert all(ipaddress.ip_address(ip).version == family for ip in svc["clusterIPs"]), svc
    finally:
        lab.down()
    assert not any(ns in _netns_list() for ns in netns)


def format_host(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    return f"[{address}]" if address.version == 6 else str(address)


def _addresses(netns: str | None, family: int, dev: str | None = None) -> list[str]:
    """Addresses of `family` in `netns` (None: the host), leaving out loopback: 127.0.0.1 on lo stays."""
    argv = ["ip", "-j", f"-{family}", "addr", "show", *(["dev", dev] if dev else [])]
    if netns is not None:
        argv = ["ip", "-n", netns, *argv[1:]]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [a["local"] for link in json.loads(out or "[]") for a in link.get("addr_info", [])
            if not (link["ifname"] == "lo" and family == 4)]


def _netns_list() -> set[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {e["name"] for e in json.loads(out or "[]")}
