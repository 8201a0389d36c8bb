"""The control-plane VIP over BGP: the agent's one Speaker (ExaBGP child, kubevip.bgp) announcing a /32
and a /128 for the VIPs this node holds, with this node's next hop of each family.

The runner (controlplane.agent) decides when (core.cpbgp); this only turns "these VIPs" into
advertisements and converges the speaker. A VIP of a family without a next hop is logged once and not
announced (the other family still is).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from kubevip.bgp.advertisement import Advertisement, advertisement_for
from kubevip.bgp.settings import BgpSettings
from kubevip.bgp.shared import SpeakerLike, new_speaker
from kubevip.core.bgp import ServiceCommunities
from kubevip.errors import BgpError, ConfigError
from kubevip.ip import IPAddress

log = logging.getLogger(__name__)

# With bgp_enable and no vip_interface the VIPs go on the loopback (as for Services in BGP mode): the node
# must accept the traffic the router sends it, and there is no segment to answer ARP / NDP on.
DEFAULT_INTERFACE = "lo"


class CpAnnouncer:
    """Announces exactly the VIPs given to `announce` (a set; empty withdraws all)."""

    def __init__(self, settings: BgpSettings, speaker: SpeakerLike | None = None,
                 on_state: Callable[[SpeakerLike], None] | None = None) -> None:
        if not settings.peers:
            # The control-plane agent has no Node watch: peers from Node annotations (`annotation`) are
            # a Service-agent feature; a static Pod names its peers.
            raise ConfigError("bgp_peers", "", "cp_enable=true with bgp_enable=true needs bgp_peers or "
                              "bgp_peeraddress (peers from Node annotations are not read by the control "
                              "plane)")
        self.settings = settings
        self.speaker: SpeakerLike | None = speaker  # a part of the process's shared speaker, or its own
        self.on_state = on_state
        self.announced: frozenset[Advertisement] = frozenset()
        self._reported: set[str] = set()

    async def start(self) -> None:
        if self.speaker is None:
            self.speaker = await new_speaker(self.settings)
        await self.speaker.start()
        if self.on_state is not None:
            self.on_state(self.speaker)

    def advertisements(self, vips: Iterable[IPAddress]) -> frozenset[Advertisement]:
        assert self.speaker is not None
        out: set[Advertisement] = set()
        for vip in vips:
            try:
                out.add(advertisement_for(vip, ServiceCommunities(), self.settings, self.speaker.next_hops))
            except BgpError as exc:
                if str(exc) not in self._reported:
                    self._reported.add(str(exc))
                    log.warning("control-plane VIP not announced: %s", exc)
        return frozenset(out)

    async def announce(self, vips: Iterable[IPAddress]) -> None:
        """Converge the speaker to `vips` (raises nothing: a refusal is logged, retried next change)."""
        if self.speaker is None:
            return
        want = self.advertisements(vips)
        try:
            await self.speaker.converge(want)
        except BgpError as exc:
            log.error("BGP speaker refused the control-plane VIPs: %s", exc)
            return
        if want != self.announced:
            log.info("control-plane VIPs over BGP: %s", ", ".join(
                f"{a.prefix} via {a.next_hop}" for a in sorted(want, key=lambda a: str(a.prefix))) or "none")
        self.announced = want

    async def close(self) -> None:
        """Withdraw everything and stop ExaBGP (NOTIFICATION Cease: the router drops this node's routes)."""
        if self.speaker is not None:
            await self.speaker.close()
