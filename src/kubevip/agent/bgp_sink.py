"""BGP mode, the side-effect half: feeds the Speaker this node's wanted advertisements, exports session
state as `kube_vip_manager_bgp_session_info` and turns bad BGP annotations into Warning Events.

The reconciler calls `sync` twice around its kernel changes: before (VIPs about to go are withdrawn
first) and after (VIPs just added are announced only once the node accepts their traffic).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from kubevip.agent.bgp_wants import Problem, Wanted, wanted
from kubevip.bgp.settings import BgpSettings
from kubevip.bgp.shared import SpeakerLike, new_speaker
from kubevip.core.claims import VipPlan
from kubevip.core.rows import Row
from kubevip.core.views import IPAddress
from kubevip.errors import BgpError
from kubevip.metrics import Metrics

log = logging.getLogger(__name__)

# With bgp_enable and neither vip_servicesinterface nor vip_interface set, VIPs go on the loopback: the
# node must accept their traffic, and there is no segment to answer ARP / NDP on in BGP mode.
DEFAULT_INTERFACE = "lo"
SESSION_STATES = ("up", "connected", "down")


class BgpSink:
    """One Speaker per agent; `sync(agent, held)` makes it announce exactly the held, planned VIPs."""

    def __init__(self, settings: BgpSettings, metrics: Metrics, speaker: SpeakerLike | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        # The process's shared speaker part when the control plane announces too (bgp/shared.py).
        self.speaker: SpeakerLike | None = speaker
        self.last = Wanted(frozenset(), frozenset())

    async def start(self) -> None:
        """Find the node's peer-facing addresses (next hops, router id), start ExaBGP, export metrics.
        Without peers yet (they come from Node annotations) there is nothing to start."""
        if self.speaker is None and not self.settings.peers:
            prefix = self.settings.annotation_prefix
            log.info("BGP: no peers yet; waiting for this node's %s/* annotations", prefix)
            return
        if self.speaker is None:
            self.speaker = await new_speaker(self.settings)
        await self.speaker.start()
        for peer in self.settings.peers:
            for state in SESSION_STATES:
                self.metrics.bgp_session_info.labels(state, str(peer.address)).set_function(
                    _state_probe(self.speaker, peer.address, state)
                )

    async def sync(
        self, held: Iterable[Row], plans: Iterable[VipPlan], annotations: Mapping[str, Mapping[str, str]]
    ) -> frozenset[Problem]:
        """Converge the speaker to the advertisements of `held` (VIPs on this node) under `plans`.

        `annotations` holds each planned Service's annotations. Returns the problems that are new since
        the last sync (the caller reports them); data in, data out: the sink knows no agent.
        """
        if self.speaker is None:
            return frozenset()
        addrs = {r.address for r in held}
        w = wanted(addrs, plans, annotations, self.settings, self.speaker.next_hops)
        try:
            await self.speaker.converge(w.advertisements)
        except BgpError as exc:
            log.error("BGP speaker refused the desired set (retried next pass): %s", exc)
            self.metrics.reconcile_errors.labels("", "", "bgp").inc()
        new = frozenset(w.problems - self.last.problems)
        self.last = w
        return new

    async def reconfigure(self, settings: BgpSettings) -> None:
        """New peers or local settings (from Node annotations): a new ExaBGP with them. The old one
        withdraws and says Cease; the next `sync` feeds the new one the same advertisements."""
        if settings == self.settings and self.speaker is not None:
            return
        if self.speaker is not None:
            await self.speaker.close()
            for peer in self.settings.peers:
                for state in SESSION_STATES:
                    self.metrics.bgp_session_info.remove(state, str(peer.address))
        self.speaker = None
        self.settings = settings
        self.last = Wanted(frozenset(), frozenset())
        await self.start()

    async def close(self) -> None:
        """Withdraw everything and stop ExaBGP (a NOTIFICATION Cease: peers drop this node's routes)."""
        if self.speaker is not None:
            await self.speaker.close()


def _state_probe(speaker: SpeakerLike, peer: IPAddress, state: str) -> Callable[[], float]:
    """1.0 while the session with `peer` is in `state` (read at scrape time: always current)."""
    return lambda: 1.0 if speaker.peer_states.get(peer) == state else 0.0
