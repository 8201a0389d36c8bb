"""Kernel lifetimes of VIPs, in a real kernel: set at add, extended by one precomputed batch, and the
address removed by the kernel itself when nobody extends it (both families; IPv6 without DAD). Also
ownership without IFA_PROTO (the fallback forced on this kernel) and the start-up probe."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from kubevip.election.lifetime import KERNEL_LATE
from kubevip.lab.network import LabNetwork
from kubevip.net.addresses import (
    AddressManager,
    NotExtended,
    Ownership,
    detect_ownership,
    kernel_keeps_proto,
)
from kubevip.net.namespace import Netns
from tests.fixtures.waiting import wait_until
from tests.net.l2.helpers import addresses, ping

pytestmark = pytest.mark.net
FAMILIES = [4, 6]


def manager(lab: LabNetwork, **kw: Any) -> AddressManager:
    n = lab.nodes[0]
    return AddressManager(n.interface, ns=Netns(n.netns), **kw)


def info(lab: LabNetwork, ip: object) -> dict[str, Any] | None:
    """iproute2's view of one address on node1's interface (an independent parser), or None."""
    node = lab.nodes[0]
    out = lab.run(node.netns, ["ip", "-j", "addr", "show", "dev", node.interface]).stdout
    for link in json.loads(out):
        for a in link.get("addr_info", []):
            if a["local"] == str(ip):
                return dict(a)
    return None


@pytest.mark.parametrize("family", FAMILIES)
def test_lifetime_is_set_extended_and_the_kernel_removes_the_vip(lab: LabNetwork, family: int) -> None:
    vip = lab.vip(family)
    m = manager(lab)
    assert m.add(vip, lifetime=2) is True
    a = info(lab, vip)
    assert a is not None and a["valid_life_time"] <= 2 and a["preferred_life_time"] <= 2
    if family == 6:
        assert a.get("nodad") is True and not a.get("tentative")
    assert ping(lab, lab.client.netns, vip, wait_s=1)

    # Extended past its first end: still there after the first lifetime is over.
    started = time.monotonic()
    while time.monotonic() - started < 3.0:
        assert m.extend({(vip, vip.max_prefixlen): 3}) == {}
        a = info(lab, vip)
        assert a is not None and 2 <= a["valid_life_time"] <= 3 and a.get("dynamic")
        time.sleep(0.2)  # pacing of the extensions (as renewals would), not synchronisation
    assert m.owned() == {(vip, vip.max_prefixlen)}

    # Nobody extends any more: the kernel removes it, within the lifetime plus its lateness.
    last = time.monotonic()
    assert m.extend({(vip, vip.max_prefixlen): 1}) == {}
    wait_until(
        lambda: info(lab, vip) is None, f"the kernel removes {vip}", 1 + KERNEL_LATE + 3.0, interval=0.01
    )
    took = time.monotonic() - last
    assert took >= 0.9  # not before its lifetime (1 s, minus the kernel's 20 ms of batching)
    assert m.owned() == set()


@pytest.mark.parametrize("family", FAMILIES)
def test_extension_brings_back_a_vip_the_kernel_removed(lab: LabNetwork, family: int) -> None:
    """A stalled holder whose VIP expired gets it back with the first extension after a renewal."""
    vip = lab.vip(family, 1)
    m = manager(lab)
    m.add(vip, lifetime=1)
    wait_until(lambda: info(lab, vip) is None, "expiry", 1 + KERNEL_LATE + 3.0, interval=0.01)
    assert m.extend({(vip, vip.max_prefixlen): 5}) == {}
    a = info(lab, vip)
    assert a is not None and a["valid_life_time"] <= 5
    if family == 6:
        assert a.get("nodad") is True
    assert m.owned() == {(vip, vip.max_prefixlen)}  # with our protocol: still ours


@pytest.mark.parametrize("family", FAMILIES)
def test_an_extension_past_its_fencing_deadline_never_reaches_the_kernel(
    lab: LabNetwork, family: int,
) -> None:
    """The chaos soak's SIGSTOP between deciding an extension round and sending it: the round must not
    re-create the addresses the kernel removed meanwhile. `not_after` is checked next to the send."""
    vips = [lab.vip(family, i) for i in range(46, 49)]
    m = manager(lab)
    assert m.add_many(((v, None) for v in vips), lifetime=1) == {}
    wait_until(lambda: all(info(lab, v) is None for v in vips), "expiry", 1 + KERNEL_LATE + 3.0,
               interval=0.01)
    errors = m.extend({(v, v.max_prefixlen): 5 for v in vips}, not_after=time.monotonic() - 0.001)
    assert set(errors) == set(vips) and all(isinstance(e, NotExtended) for e in errors.values())
    assert all(info(lab, v) is None for v in vips)  # nothing came back
    # Before the deadline the same round brings them back (the extension's normal duty).
    assert m.extend({(v, v.max_prefixlen): 5 for v in vips}, not_after=time.monotonic() + 5) == {}
    assert all(info(lab, v) is not None for v in vips)


def test_an_add_past_its_fencing_deadline_never_reaches_the_kernel(lab: LabNetwork) -> None:
    """The same race for a pass's adds: decided while held, sent after a stop past the deadline."""
    vips = [lab.vip(4, 44), lab.vip(6, 44)]
    m = manager(lab)
    mine, errors = m.add_many_owned(((v, None) for v in vips), lifetime=1, not_after=time.monotonic() - 0.001)
    assert mine == set() and set(errors) == set(vips)
    assert all(isinstance(e, NotExtended) for e in errors.values())
    assert all(info(lab, v) is None for v in vips)
    mine, errors = m.add_many_owned(((v, None) for v in vips), lifetime=1, not_after=time.monotonic() + 5)
    assert mine == set(vips) and errors == {}


def test_one_batch_extends_many_and_a_permanent_add_stays_permanent(lab: LabNetwork) -> None:
    m = manager(lab)
    vips = [lab.vip(4, i) for i in range(10, 40)] + [lab.vip(6, i) for i in range(10, 40)]
    assert m.add_many(((v, None) for v in vips), lifetime=30) == {}
    assert m.extend({(v, v.max_prefixlen): 40 for v in vips}) == {}
    for v in (vips[0], vips[-1]):
        a = info(lab, v)
        assert a is not None and 30 < a["valid_life_time"] <= 40
    forever = lab.vip(4, 45)
    m.add(forever)
    a = info(lab, forever)
    assert a is not None and a["valid_life_time"] == 4294967295


def test_none_makes_a_vip_permanent_and_a_lifetime_makes_it_dynamic_again(lab: LabNetwork) -> None:
    """Above the IPv6 limit the agent rewrites its IPv6 VIPs permanent with the same batch (None), and
    gives them lifetimes again below it; the address stays ours (IFA_PROTO) throughout."""
    m = manager(lab)
    vips = [lab.vip(6, 46), lab.vip(6, 47), lab.vip(4, 46)]
    assert m.add_many(((v, None) for v in vips), lifetime=30) == {}
    six = {(v, v.max_prefixlen): None for v in vips[:2]}
    assert m.extend(dict(six)) == {}
    for v in vips[:2]:
        a = info(lab, v)
        assert a is not None and a["valid_life_time"] == 4294967295 and "dynamic" not in a
    four = info(lab, vips[2])
    assert four is not None and four["valid_life_time"] <= 30  # not in the batch: untouched
    assert {(v, v.max_prefixlen) for v in vips} <= m.owned()
    assert m.extend(dict.fromkeys(six, 20)) == {}  # the same cached requests, a lifetime again
    for v in vips[:2]:
        a = info(lab, v)
        assert a is not None and a["valid_life_time"] <= 20 and a.get("dynamic") is True
    assert m.remove_many(vips) == {}


def test_the_probe_finds_ifa_proto_on_this_kernel_and_leaves_nothing(lab: LabNetwork) -> None:
    node = lab.nodes[0]
    ns = Netns(node.netns)
    before = addresses(lab, node.netns, "lo")
    assert kernel_keeps_proto(ns) is True
    assert addresses(lab, node.netns, "lo") == before
    assert detect_ownership(ns) == Ownership()


def test_forced_fallback_uses_state_file_and_lifetime_marker(
    lab: LabNetwork, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The fallback of kernels < 5.18, forced on this kernel: the protocol the kernel reports is ignored;
    an address is ours when the state file lists it AND it carries a lifetime."""
    node = lab.nodes[0]
    ns = Netns(node.netns)
    with caplog.at_level(logging.WARNING, logger="kubevip.net.addresses"):
        own = detect_ownership(ns, force_fallback=True, state_dir=tmp_path, lifetime_marker=True)
    assert own.proto_kept is False and own.lifetime_marker
    lines = [r for r in caplog.records if "falling back to the state file" in r.getMessage()]
    assert len(lines) == 1 and "vip_ownership=statefile" in lines[0].getMessage()

    m = own.manager(node.interface, ns)
    ours4, ours6, readded = lab.vip(4, 1), lab.vip(6, 1), lab.vip(4, 2)
    assert m.add_many([(ours4, None), (ours6, None), (readded, None)], lifetime=60) == {}
    state = json.loads((tmp_path / "addresses-248.json").read_text())
    assert set(state[node.interface]) == {f"{ours4}/32", f"{ours6}/128", f"{readded}/32"}
    # An operator replaces one of them by a permanent address of the same value (with proto 0).
    lab.run(node.netns, ["ip", "addr", "del", f"{readded}/32", "dev", node.interface])
    lab.run(node.netns, ["ip", "addr", "add", f"{readded}/32", "dev", node.interface])
    # A foreign address that carries OUR protocol number but is in no state file: not ours either.
    foreign = lab.vip(4, 3)
    AddressManager(node.interface, ns).add(foreign)  # permanent, IFA_PROTO 248, in no state file
    assert m.owned() == {(ours4, 32), (ours6, 128)}
    assert m.remove_many([ours4, ours6, readded, foreign]) == {}
    left = addresses(lab, node.netns, node.interface)
    assert f"{readded}/32" in left and f"{foreign}/32" in left
    assert f"{ours4}/32" not in left and f"{ours6}/128" not in left
    # The control-plane part keeps its own file: neither part can take the other's addresses.
    assert own.manager(node.interface, ns, proto=249).owned() == set()


def test_a_pass_adding_many_vips_past_its_deadline_logs_one_line(
    lab: LabNetwork, caplog: pytest.LogCaptureFixture
) -> None:
    """A stalled pass that wakes past the fencing deadline with many adds: none reaches the kernel, every
    row is reported failed, and the log gets one line naming how many (it got one line per VIP, 2000
    of them several times a second in a 1000-Service restart)."""
    from kubevip.core.rows import Changes, Row
    from kubevip.net.settings import NetSettings
    from kubevip.net.vipset import VipSet

    node = lab.nodes[0]
    vs = VipSet(NetSettings(interface=node.interface), Netns(node.netns), label="node n0")
    rows = tuple(Row(lab.vip(f, i), node.interface) for f in (4, 6) for i in range(30, 40))
    with caplog.at_level(logging.INFO, "kubevip.net.vipset"):
        failed, ours = vs.change(Changes(add=rows, remove=()), dict.fromkeys(rows, 1),
                                 not_after=time.monotonic() - 0.001)
    assert failed == set(rows) and ours == set()
    assert all(info(lab, r.address) is None for r in rows)
    lines = [r.getMessage() for r in caplog.records if "past the fencing deadline" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("node n0: 20 VIPs not added, past the fencing deadline")
