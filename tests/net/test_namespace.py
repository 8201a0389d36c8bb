"""Netns.socket in a named namespace: inside a shared() block one netlink socket per protocol, reused."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from kubevip.net import rtnl_batch
from kubevip.net.interfaces import link
from kubevip.net.namespace import Netns
from tests.fixtures.netns import scratch_netns


@pytest.fixture
def ns() -> Iterator[Netns]:
    with scratch_netns("kvt-ns") as name:
        yield Netns(name)


def test_a_shared_block_creates_one_netlink_socket_and_hands_out_duplicates(
    ns: Netns, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[int] = []
    real = Netns._create

    def counting(self: Netns, family: int, kind: int, proto: int) -> socket.socket:
        created.append(proto)
        return real(self, family, kind, proto)

    monkeypatch.setattr(Netns, "_create", counting)
    with ns.shared():
        ports = []
        for _ in range(3):
            with ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
                assert rtnl_batch.get_link(sock, "lo", "test") is not None
                ports.append(sock.getsockname())
        assert link("lo", ns).name == "lo" and link(1, ns).index == 1
        assert created == [socket.NETLINK_ROUTE] and len(set(ports)) == 1  # one socket, duplicated
    with ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE):
        pass
    assert len(created) == 2  # outside a block: a socket of its own


def test_a_reply_left_unread_does_not_answer_the_next_call(ns: Netns) -> None:
    with ns.shared():
        with ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
            sock.send(rtnl_batch.link_request(1, 1))  # lo's reply, never read (a call that failed midway)
        with pytest.raises(Exception, match="does not exist"):
            link("nosuch0", ns)  # the same sequence number: lo's stale reply must not answer it
