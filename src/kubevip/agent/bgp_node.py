"""BGP peers from this node's Node annotations (kube-vip's `annotation` prefix; format: core/bgppeers.py),
applied without a restart of the agent whenever they change (docs/bgp.md)."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Mapping

from kubevip.bgp.settings import _PASSWORD_RULE, BgpSettings, Peer, password_ok
from kubevip.core import bgppeers
from kubevip.errors import InputError

log = logging.getLogger(__name__)


def node_settings(base: BgpSettings, annotations: Mapping[str, str]) -> BgpSettings:
    """`base` with local AS, source, router id and peers from the annotations; InputError names the
    annotation that is missing or wrong (never the password)."""
    prefix = base.annotation_prefix
    nb = bgppeers.parse(annotations, prefix)
    if nb.password and not password_ok(nb.password):
        raise InputError(f"annotation {prefix}/bgp-pass: {_PASSWORD_RULE}")
    peers = tuple(Peer(ip, nb.peer_as, nb.password, nb.multihop) for ip in nb.peers)
    v4 = isinstance(nb.source_ip, ipaddress.IPv4Address)
    return dataclasses.replace(
        base, local_as=nb.local_as, peers=peers, source_ip=nb.source_ip, source_if="",
        router_id=nb.source_ip if v4 else base.router_id,  # type: ignore[arg-type]
        router_interface="" if v4 else base.router_interface,
    )


async def follow(
    base: BgpSettings, node: str, annotations: Callable[[], Mapping[str, str] | None],
    changed: asyncio.Event, apply: Callable[[BgpSettings], Awaitable[None]],
) -> None:
    """Whenever `changed` is set: read our Node's annotations and `apply` the settings they give when
    those differ from the last applied. Wrong or missing annotations keep the current peers (logged once
    per distinct problem)."""
    applied: BgpSettings | None = None
    problem = ""
    while True:
        await changed.wait()
        changed.clear()
        ann = annotations()
        if ann is None:
            continue  # our Node is not known (yet)
        try:
            settings = node_settings(base, ann)
        except InputError as exc:
            if str(exc) != problem and (applied is not None or bgppeers.has_any(ann, base.annotation_prefix)
                                        or not problem):
                log.warning("node %s: BGP from Node annotations: %s; %s", node, exc,
                            "keeping the current peers" if applied is not None else "no BGP session yet")
            problem = str(exc)
            continue
        problem = ""
        if settings == applied:
            continue
        log.info("node %s: BGP from Node annotations: AS %d, source %s, peers %s", node, settings.local_as,
                 settings.source_ip, ", ".join(f"{p.address} (AS {p.asn})" for p in settings.peers))
        await apply(settings)
        applied = settings
