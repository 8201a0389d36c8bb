"""Netns.iproute / shared: one pyroute2 socket per block, opened only when something uses it."""

from __future__ import annotations

import pytest

from kubevip.net import namespace
from kubevip.net.namespace import OWN


class FakeIPRoute:
    opened: list[FakeIPRoute] = []

    def __init__(self) -> None:
        self.closed = False
        FakeIPRoute.opened.append(self)

    def close(self) -> None:
        self.closed = True


@pytest.fixture(autouse=True)
def fake_open(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeIPRoute.opened = []
    monkeypatch.setattr(namespace.Netns, "_open", lambda self: FakeIPRoute())


def test_a_shared_block_that_uses_nothing_opens_nothing() -> None:
    with OWN.shared():
        pass
    assert FakeIPRoute.opened == []


def test_iproute_blocks_inside_a_shared_block_share_one_socket_closed_at_its_end() -> None:
    with OWN.shared():
        with OWN.iproute() as a:
            assert not a.closed  # type: ignore[attr-defined]
        with OWN.shared(), OWN.iproute() as b:  # nested shared blocks are one
            pass
        assert a is b and not a.closed  # type: ignore[attr-defined]
    assert FakeIPRoute.opened == [a] and a.closed  # type: ignore[attr-defined]
    with OWN.iproute() as c:  # outside: a fresh one, closed with its own block
        pass
    assert c is not a and c.closed  # type: ignore[attr-defined]


def test_an_iproute_block_opened_before_the_shared_block_keeps_its_own_lifetime() -> None:
    with OWN.iproute() as a:
        with OWN.shared(), OWN.iproute() as b:
            assert b is a
        assert not a.closed  # type: ignore[attr-defined]
    assert a.closed and FakeIPRoute.opened == [a]  # type: ignore[attr-defined]
