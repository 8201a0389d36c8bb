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


# ExaBGP's API layer in a fresh interpreter: the text commands the speaker sends, with the environment
# the speaker gives ExaBGP (EXABGP_ENV), answered without ExaBGP's reactor; prints what ExaBGP logged.
_API_HARNESS = """
import sys
from exabgp.configuration.configuration import Configuration
from exabgp.environment import getenv
from exabgp.logger import log
from exabgp.reactor.api import API
from exabgp.reactor.api.command.announce import announce_attributes, withdraw_attribute
from exabgp.reactor.asynchronous import ASYNC

log.init(getenv())
conf = Configuration([sys.argv[1]])
assert conf.reload(), conf.error
answers = []

class Processes:
    def answer_done(self, service):
        answers.append("done")

    def answer_error(self, service):
        answers.append("error")

class Reactor:
    configuration = conf
    processes = Processes()
    asynchronous = ASYNC()

    def peers(self, service=None):
        return list(conf.neighbors)

reactor, api = Reactor(), API(conf)
announce_attributes(api, reactor, "kubevip", "neighbor 192.0.2.1 announce attributes next-hop 192.0.2.10 "
                    "origin igp nlri 198.51.100.7/32", False)
withdraw_attribute(api, reactor, "kubevip", "neighbor 192.0.2.1 withdraw attributes next-hop 192.0.2.10 "
                   "nlri 198.51.100.7/32", False)
while reactor.asynchronous.run():
    pass
print("answers:", " ".join(answers))
"""


def _api_output(tmp_path: Path, **env: str) -> str:
    conf = tmp_path / "exabgp.conf"
    conf.write_text(render(_settings(), RID, [sys.executable, bridge.__file__, str(tmp_path / "api.sock")]))
    res = subprocess.run([sys.executable, "-c", _API_HARNESS, str(conf)], capture_output=True, text=True,
                         timeout=60, env={"PATH": "/usr/bin:/bin", **EXABGP_ENV, **env}, check=True)
    return res.stdout + res.stderr


def test_exabgp_writes_no_line_per_route_and_still_answers_every_command(tmp_path: Path) -> None:
    # One "route added to neighbor ..." line per route was half of ExaBGP's CPU per command, read by the
    # agent only to be dropped at its debug level.
    out = _api_output(tmp_path)
    assert "answers: done done" in out, out
    assert "route added" not in out and "route removed" not in out, out
    loud = _api_output(tmp_path, exabgp_log_processes="true")  # ExaBGP's default
    assert "route added" in loud and "route removed" in loud, loud
