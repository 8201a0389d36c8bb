"""`kubevip lab up --bgp`: the lab router peers with a node's speaker; its client reaches the VIP."""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubevip.bgp.advertisement import Advertisement
from kubevip.bgp.settings import BgpSettings, Peer
from kubevip.bgp.speaker import Speaker
from kubevip.errors import BgpError, LabError
from kubevip.lab.bgp import NODE_AS, ROUTER_AS, LabBgp
from kubevip.lab.network import LabNetwork
from kubevip.lab.routers import DAEMONS, make_router
from tests.fixtures.prereqs import require_root_netns
from tests.net.test_bgp_speaker import _require_daemon

pytestmark = [pytest.mark.net, pytest.mark.bgp]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabNetwork]:
    require_root_netns()
    net = LabNetwork(f"kvtb{secrets.token_hex(3)}", nodes=2, state_dir=tmp_path)
    try:
        net.up()
        yield net
    finally:
        LabBgp(net, tmp_path).down()
        try:
            net.down()
        except LabError:
            # LabNetwork.down races the kernel removing the host uplink together with the bridge
            # namespace ("Cannot find device"); a second pass finds everything gone.
            net.down()


@pytest.mark.parametrize("daemon", DAEMONS)
async def test_lab_router_peers_with_a_node_and_its_client_reaches_the_vip(
    lab: LabNetwork, tmp_path: Path, daemon: str
) -> None:
    _require_daemon(daemon)
    bgp = LabBgp(lab, tmp_path)
    bgp.up(daemon)
    doc = bgp.to_json()
    assert set(doc) == {"router", "bgp_client"}
    assert set(doc["router"]) == {"netns", "daemon", "asn", "ipv4", "ipv6"}
    assert doc["router"]["daemon"] == daemon and doc["router"]["asn"] == ROUTER_AS
    assert bgp.up(daemon)[0].startswith("BGP router")  # idempotent

    node = lab.nodes[0]
    router_ip = ipaddress.ip_address(doc["router"]["ipv4"])
    settings = BgpSettings(enabled=True, local_as=NODE_AS, peers=(Peer(router_ip, ROUTER_AS),), hold_time=9)
    sp = Speaker(settings, [node.ipv4, node.ipv6], command_prefix=("ip", "netns", "exec", node.netns))
    vip4, vip6 = lab.vip(4, 0), lab.vip(6, 0)
    # A second handle on the running router, only to read its RIB through its own socket.
    reader = make_router(
        daemon,
        doc["router"]["netns"],
        Path(f"/tmp/kubevip-lab-{lab.lab_id}-bgp") / daemon,
        ROUTER_AS,
        ipaddress.IPv4Address(doc["router"]["ipv4"]),
        [],
    )
    try:
        await sp.start()
        await sp.converge(
            {
                Advertisement(ipaddress.ip_network(vip4), node.ipv4),
                Advertisement(ipaddress.ip_network(vip6), node.ipv6),
            }
        )
        want4 = {ipaddress.ip_network(vip4): frozenset({node.ipv4})}
        want6 = {ipaddress.ip_network(vip6): frozenset({node.ipv6})}
        deadline = time.monotonic() + 30
        got: list[object] = []
        while time.monotonic() < deadline:
            try:
                got = [await reader.rib(4), await reader.rib(6)]
            except BgpError:  # the daemon's API may still be starting
                got = []
            if got == [want4, want6]:
                break
            await asyncio.sleep(0.1)
        assert got == [want4, want6]
        if reader.installs_routes:
            for vip in (vip4, vip6):
                ok = await asyncio.to_thread(_reach_through_router, node.netns, vip, doc)
                assert ok, f"bgp_client cannot reach {vip} through {daemon}"
    finally:
        await sp.close()
    state = bgp.state()
    assert state is not None
    pids = [pid for pid, _ in state["pids"]]
    assert pids and all(exe for _, exe in state["pids"]), state["pids"]
    assert bgp.down()
    assert bgp.to_json() == {}
    assert not [pid for pid in pids if _running(pid)], "lab down left the router daemon running"


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _reach_through_router(
    node_ns: str, vip: ipaddress.IPv4Address | ipaddress.IPv6Address, doc: dict[str, Any]
) -> bool:
    """Bind the VIP on the node, route replies via the router, ping it from the bgp_client namespace."""
    plen = 32 if vip.version == 4 else 128
    subprocess.run(["ip", "-n", node_ns, "addr", "add", f"{vip}/{plen}", "dev", "lo"], check=True)
    gw = doc["router"]["ipv4"] if vip.version == 4 else doc["router"]["ipv6"]
    dest = "default" if vip.version == 4 else "::/0"
    subprocess.run(["ip", "-n", node_ns, f"-{vip.version}", "route", "replace", dest, "via", gw], check=True)
    ping = ["ip", "netns", "exec", doc["bgp_client"]["netns"], "ping", "-c1", "-W1", str(vip)]
    # The router's RIB is read from the daemon; its kernel route (zebra / bird's kernel protocol)
    # follows asynchronously and, on a loaded machine, late: ping until a deadline, not once.
    deadline = time.monotonic() + 15
    while True:
        if subprocess.run(ping, capture_output=True, check=False).returncode == 0:
            return True
        if time.monotonic() > deadline:
            return False


@pytest.mark.parametrize("daemon", DAEMONS)
async def test_ipv6_only_lab_router_peers_over_ipv6(tmp_path: Path, daemon: str) -> None:
    """`lab up --stack ipv6 --bgp`: router and bgp_client have no IPv4 address, the session runs over
    IPv6 (the node's router id derived from its IPv6 address), the IPv6 VIP reaches the router's RIB."""
    require_root_netns()
    _require_daemon(daemon)
    lab = LabNetwork(f"kvtb{secrets.token_hex(3)}", nodes=1, state_dir=tmp_path, stack="ipv6")
    bgp = LabBgp(lab, tmp_path)
    try:
        lab.up()
        bgp.up(daemon)
        doc = bgp.to_json()
        assert doc["router"]["ipv4"] is None and doc["bgp_client"]["ipv4"] is None, doc
        assert bgp.agent_env()["bgp_peers"] == f"[{doc['router']['ipv6']}]:{ROUTER_AS}"
        for ns in (doc["router"]["netns"], doc["bgp_client"]["netns"]):
            out = (await lab.run_async(ns, ["ip", "-4", "-o", "addr"])).stdout
            assert [line for line in out.splitlines() if " lo " not in line] == [], (ns, out)
        node = lab.nodes[0]
        peer = Peer(ipaddress.ip_address(doc["router"]["ipv6"]), ROUTER_AS)
        sp = Speaker(BgpSettings(enabled=True, local_as=NODE_AS, peers=(peer,), hold_time=9), [node.ipv6],
                     command_prefix=("ip", "netns", "exec", node.netns))
        reader = bgp.reader()
        assert reader is not None
        vip6 = lab.vip(6, 0)
        want = {ipaddress.ip_network(vip6): frozenset({node.ipv6})}
        try:
            await sp.start()
            await sp.converge({Advertisement(ipaddress.ip_network(vip6), node.ipv6)})
            deadline = time.monotonic() + 30
            got: object = None
            while time.monotonic() < deadline and got != want:
                try:
                    got = await reader.rib(6)
                except BgpError:  # the daemon's API may still be starting
                    got = None
                await asyncio.sleep(0.1)
            assert got == want
        finally:
            await sp.close()
    finally:
        bgp.down()
        try:
            lab.down()
        except LabError:  # see the `lab` fixture: a second pass finds everything gone
            lab.down()
