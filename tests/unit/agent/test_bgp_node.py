"""BGP settings from Node annotations, and following their changes without a restart (agent/bgp_node.py)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import ipaddress

import pytest

from kubevip.agent.bgp_node import follow, node_settings
from kubevip.bgp.settings import BgpSettings, Peer
from kubevip.errors import InputError

P = "kv"
ANN = {f"{P}/node-asn": "65001", f"{P}/src-ip": "192.0.2.11", f"{P}/peer-asn": "65000",
       f"{P}/peer-ip": "192.0.2.1,192.0.2.2"}
BASE = BgpSettings(enabled=True, annotation_prefix=P, hold_time=9, keepalive_interval=3)


def test_annotations_replace_as_source_router_id_and_peers() -> None:
    s = node_settings(BASE, ANN)
    assert s.local_as == 65001 and s.router_id == ipaddress.ip_address("192.0.2.11")
    assert s.source_ip == ipaddress.ip_address("192.0.2.11")
    ips = [ipaddress.ip_address(a) for a in ("192.0.2.1", "192.0.2.2")]
    assert s.peers == tuple(Peer(ip, 65000) for ip in ips)
    assert (s.hold_time, s.keepalive_interval) == (9, 3)  # the rest stays as configured


def test_password_exabgp_cannot_carry_is_refused_without_showing_it() -> None:
    bad = base64.b64encode(b"has space").decode()
    with pytest.raises(InputError) as err:
        node_settings(BASE, {**ANN, f"{P}/bgp-pass": bad})
    assert "has space" not in str(err.value) and "bgp-pass" in str(err.value)


async def test_follow_applies_changes_and_keeps_peers_on_bad_input() -> None:
    current: dict[str, str] | None = None
    applied: list[BgpSettings] = []
    changed = asyncio.Event()
    done = asyncio.Event()

    async def apply(s: BgpSettings) -> None:
        applied.append(s)
        done.set()

    async def step(ann: dict[str, str] | None) -> None:
        nonlocal current
        current = ann
        done.clear()
        changed.set()
        # follow() clears `changed` when it has read the annotations; then it has applied or skipped.
        for _ in range(100):
            await asyncio.sleep(0)
            if not changed.is_set():
                break

    task = asyncio.create_task(follow(BASE, "n1", lambda: current, changed, apply))
    try:
        await step(None)  # Node unknown: nothing
        await step({})  # no annotations: nothing
        await step(ANN)
        assert [str(p.address) for p in applied[-1].peers] == ["192.0.2.1", "192.0.2.2"]
        await step({**ANN, "unrelated": "x"})  # same settings: not applied again
        assert len(applied) == 1
        await step({**ANN, f"{P}/peer-asn": "bad"})  # wrong: the current peers stay
        assert len(applied) == 1
        await step({**ANN, f"{P}/peer-ip": "192.0.2.3"})
        assert len(applied) == 2 and applied[-1].peers == (Peer(ipaddress.ip_address("192.0.2.3"), 65000),)
        assert dataclasses.replace(applied[-1], peers=()) == dataclasses.replace(applied[0], peers=())
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
