"""One speaker for two parts of a process: each part's converge changes only its share, the speaker
announces the union, the first part to close withdraws only its own, the last stops the speaker."""

from __future__ import annotations

import ipaddress
from collections.abc import Set as AbstractSet

import pytest

from kubevip.bgp.advertisement import Advertisement, NextHops
from kubevip.bgp.shared import SharedSpeaker, SpeakerLike
from kubevip.ip import IPAddress


def _adv(text: str) -> Advertisement:
    net = ipaddress.ip_network(text)
    hop = ipaddress.ip_address("192.0.2.1" if net.version == 4 else "2001:db8::1")
    return Advertisement(net, hop)


class RecordingSpeaker:
    def __init__(self) -> None:
        self.next_hops = NextHops()
        self.peer_states: dict[IPAddress, str] = {}
        self.starts = 0
        self.closed = False
        self.sets: list[frozenset[Advertisement]] = []

    async def start(self) -> None:
        self.starts += 1

    async def converge(self, desired: AbstractSet[Advertisement]) -> None:
        assert not self.closed
        self.sets.append(frozenset(desired))

    async def close(self) -> None:
        self.closed = True


def _hub() -> tuple[SharedSpeaker, RecordingSpeaker]:
    sp = RecordingSpeaker()

    async def make() -> SpeakerLike:
        return sp

    return SharedSpeaker(make), sp


async def test_the_speaker_announces_the_union_and_parts_close_their_own_share() -> None:
    hub, sp = _hub()
    svc, cp = hub.part("services"), hub.part("control-plane")
    await cp.start()
    await svc.start()
    assert sp.starts == 1  # one ExaBGP for the process
    await cp.converge({_adv("192.0.2.10/32"), _adv("2001:db8::10/128")})
    await svc.converge({_adv("198.51.100.7/32")})
    assert sp.sets[-1] == {_adv("192.0.2.10/32"), _adv("2001:db8::10/128"), _adv("198.51.100.7/32")}
    await svc.converge(set())  # the Services part withdraws its VIPs: the control plane's stay
    assert sp.sets[-1] == {_adv("192.0.2.10/32"), _adv("2001:db8::10/128")}
    await svc.converge({_adv("198.51.100.8/32")})
    await svc.close()  # Services shut down first (runner.py): only their share goes, the session stays
    assert sp.sets[-1] == {_adv("192.0.2.10/32"), _adv("2001:db8::10/128")} and not sp.closed
    await cp.close()
    assert sp.closed


async def test_a_part_cannot_be_taken_twice_or_used_before_start() -> None:
    hub, _sp = _hub()
    part = hub.part("services")
    with pytest.raises(ValueError, match="services"):
        hub.part("services")
    with pytest.raises(RuntimeError, match="before start"):
        _ = part.next_hops
