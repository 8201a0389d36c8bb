"""The rendered ExaBGP configuration says what the settings say, and ExaBGP 5.0.15 accepts it."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path

from kubevip.bgp import bridge
from kubevip.bgp.config import EXABGP_ENV, local_address, render
from kubevip.bgp.settings import BgpSettings, Peer

RID = ipaddress.IPv4Address("192.0.2.10")


def _settings() -> BgpSettings:
    return BgpSettings(
        enabled=True,
        local_as=65001,
        source_ip=ipaddress.ip_address("192.0.2.10"),
        hold_time=9,
        peers=(
            Peer(ipaddress.ip_address("192.0.2.1"), 65000, "pw", True, 1179),
            Peer(ipaddress.ip_address("2001:db8::1"), 65002),
        ),
    )


def test_render_neighbours() -> None:
    text = render(_settings(), RID, [sys.executable, bridge.__file__, "/tmp/x.sock"])
    v4, v6 = text.split("neighbor ")[1:]
    assert "local-address 192.0.2.10;" in v4 and "local-address" not in v6
    assert 'md5-password "pw";' in v4 and "connect 1179;" in v4 and "outgoing-ttl 255;" in v4
    assert "peer-as 65002;" in v6 and "local-as 65001;" in v6 and "hold-time 9;" in v6
    for block in (v4, v6):
        assert "ipv4 unicast;" in block and "ipv6 unicast;" in block and "router-id 192.0.2.10;" in block


def test_local_address_from_source_interface_matches_peer_family() -> None:
    s = BgpSettings(source_if="eth1")
    peer = Peer(ipaddress.ip_address("2001:db8::1"), 65000)
    addrs = [ipaddress.ip_address(a) for a in ("10.0.0.5", "fe80::5", "2001:db8::5")]
    assert local_address(peer, s, addrs) == ipaddress.ip_address("2001:db8::5")


def test_exabgp_validates_the_rendered_configuration(tmp_path: Path) -> None:
    conf = tmp_path / "exabgp.conf"
    conf.write_text(render(_settings(), RID, [sys.executable, bridge.__file__, str(tmp_path / "api.sock")]))
    res = subprocess.run(
        [sys.executable, "-m", "exabgp", "validate", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **EXABGP_ENV},
    )
    assert res.returncode == 0, res.stdout + res.stderr
