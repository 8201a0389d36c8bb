"""BGP passwords never reach logs: ExaBGP's output is redacted before it is logged or kept."""

from __future__ import annotations

import ipaddress

from kubevip.bgp.settings import BgpSettings, Peer
from kubevip.bgp.speaker import Speaker


def test_exabgp_output_is_redacted() -> None:
    peers = (Peer(ipaddress.ip_address("192.0.2.1"), 65000, "s3cr3t-pw"),
             Peer(ipaddress.ip_address("2001:db8::1"), 65001, ""))
    sp = Speaker(BgpSettings(enabled=True, peers=peers))
    line = 'invalid syntax line 7: "md5-password s3cr3t-pw;"'
    assert sp.redact(line) == 'invalid syntax line 7: "md5-password ***;"'
    assert sp.redact("peer 2001:db8::1 up") == "peer 2001:db8::1 up"
