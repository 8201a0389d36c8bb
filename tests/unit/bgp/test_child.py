"""kubevip.bgp.child: ExaBGP's sessions that kubevip opens go out with Nagle's algorithm off."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from exabgp.protocol.family import AFI
from exabgp.reactor.network.outgoing import Outgoing

from kubevip.bgp import child


def nodelay(afi: AFI, peer: str) -> int:
    conn = Outgoing(afi, peer, None)
    assert conn._setup() is None  # the socket ExaBGP connects with, not yet connected
    try:
        return int(conn.io.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    finally:
        conn.io.close()
        conn.io = None  # ExaBGP's own close() (from __del__) would log through its unset-up logger


@pytest.fixture
def exabgp_as_released(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Outgoing, "_setup", child._setup)


@pytest.mark.usefixtures("exabgp_as_released")
@pytest.mark.parametrize(("afi", "peer"), [(AFI.ipv4, "127.0.0.1"), (AFI.ipv6, "::1")])
def test_outgoing_sessions_get_tcp_nodelay(afi: AFI, peer: str) -> None:
    assert nodelay(afi, peer) == 0  # ExaBGP 5.0.15 alone leaves Nagle on (the 40 ms delayed-ACK wait)
    child.patch()
    child.patch()  # idempotent
    assert nodelay(afi, peer) == 1


def test_the_child_runs_exabgps_own_main() -> None:
    res = subprocess.run([sys.executable, "-m", "kubevip.bgp.child", "version"], capture_output=True,
                         text=True, timeout=60, check=True)
    assert "5.0.15" in res.stdout, res.stdout + res.stderr


def test_the_speaker_starts_the_child_module() -> None:
    import inspect

    from kubevip.bgp import speaker

    assert '"-m", "kubevip.bgp.child", "server"' in inspect.getsource(speaker)
