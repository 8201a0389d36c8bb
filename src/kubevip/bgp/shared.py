"""One BGP speaker for the two parts of one process (the Service agent and the control-plane VIP).

A router keeps one session per neighbour address, so two ExaBGP children of one node towards the same
peers would take each other's routes away. kube-vip runs one BGP server per process for both parts;
so do we: each part gets a `SpeakerPart` with the Speaker's interface (start, converge, close,
next_hops, peer_states) and the one Speaker announces the union of what the parts want.

Rule: a part's `converge` changes only its own share; `close` withdraws its share, and the last part to
close stops ExaBGP (NOTIFICATION Cease). Parts are registered up front (`part(name)`), so the first
part to close never stops the speaker under the other's feet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from typing import Protocol

from kubevip.bgp.advertisement import Advertisement, NextHops
from kubevip.bgp.ifaddrs import peer_facing_addresses
from kubevip.bgp.settings import BgpSettings
from kubevip.bgp.speaker import Speaker
from kubevip.ip import IPAddress


class SpeakerLike(Protocol):
    """What the parts use of `bgp.speaker.Speaker`."""

    @property
    def next_hops(self) -> NextHops: ...
    @property
    def peer_states(self) -> dict[IPAddress, str]: ...

    async def start(self) -> None: ...
    async def converge(self, desired: AbstractSet[Advertisement]) -> None: ...
    async def close(self) -> None: ...


class SharedSpeaker:
    """Owns the one speaker; `make` builds it on the first part's `start` (it needs the event loop)."""

    def __init__(self, make: Callable[[], Awaitable[SpeakerLike]]) -> None:
        self._make = make
        self.speaker: SpeakerLike | None = None
        self._wants: dict[str, frozenset[Advertisement]] = {}
        self._open: set[str] = set()
        self._lock = asyncio.Lock()
        self._started = False

    def part(self, name: str) -> SpeakerPart:
        if name in self._open:
            raise ValueError(f"BGP speaker part {name!r} exists already")
        self._open.add(name)
        self._wants[name] = frozenset()
        return SpeakerPart(self, name)

    async def _start(self) -> None:
        async with self._lock:
            if self._started:
                return
            speaker = await self._make()
            await speaker.start()
            self.speaker = speaker
            self._started = True

    async def _set(self, name: str, desired: AbstractSet[Advertisement]) -> None:
        self._wants[name] = frozenset(desired)
        await self._converge()

    async def _converge(self) -> None:
        if self.speaker is None:
            return  # fed on start: every part converges again after its start
        union: set[Advertisement] = set()
        for want in self._wants.values():
            union |= want
        await self.speaker.converge(union)

    async def _close(self, name: str) -> None:
        if name not in self._open:
            return
        self._open.discard(name)
        self._wants.pop(name, None)
        if self._open:
            await self._converge()  # withdraw this part's share; the others' stay announced
            return
        async with self._lock:
            speaker, self.speaker = self.speaker, None
            if speaker is not None:
                await speaker.close()


class SpeakerPart:
    """One part's handle: the Speaker's interface over its own share of the announcements."""

    def __init__(self, hub: SharedSpeaker, name: str) -> None:
        self.hub = hub
        self.name = name

    def _speaker(self) -> SpeakerLike:
        if self.hub.speaker is None:
            raise RuntimeError(f"BGP speaker part {self.name!r} used before start")
        return self.hub.speaker

    @property
    def next_hops(self) -> NextHops:
        return self._speaker().next_hops

    @property
    def peer_states(self) -> dict[IPAddress, str]:
        return self._speaker().peer_states

    async def start(self) -> None:
        await self.hub._start()

    async def converge(self, desired: AbstractSet[Advertisement]) -> None:
        await self.hub._set(self.name, desired)

    async def close(self) -> None:
        await self.hub._close(self.name)


async def new_speaker(settings: BgpSettings) -> Speaker:
    """A Speaker for `settings` whose next hops and router id come from the node's peer-facing addresses
    (netlink, in a worker thread)."""
    node_ips = await asyncio.to_thread(peer_facing_addresses, [p.address for p in settings.peers])
    return Speaker(settings, node_ips)


def for_settings(settings: BgpSettings) -> SharedSpeaker:
    """The process's shared speaker for `settings`."""

    async def make() -> SpeakerLike:
        return await new_speaker(settings)

    return SharedSpeaker(make)
