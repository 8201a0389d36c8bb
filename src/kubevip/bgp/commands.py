"""ExaBGP text-API commands and the diff that turns "what ExaBGP has" into "what is desired"."""

from __future__ import annotations

from collections.abc import Mapping

from kubevip.ip import IPAddress, IPNetwork

# One peer's view of one prefix: (peer, prefix) -> (next hop, communities text, large communities text).
Key = tuple[IPAddress, IPNetwork]
Route = tuple[IPAddress, str, str]


def _order(key: Key) -> tuple[int, int, int, int]:
    peer, prefix = key
    return (peer.version, int(peer), prefix.version, int(prefix.network_address))


def diff(have: Mapping[Key, Route], want: Mapping[Key, Route]) -> tuple[list[tuple[Key, Route]], list[Key]]:
    """(announce these, then withdraw those) so that `have` becomes `want`; a changed route is re-announced,
    which replaces it at the peer without a withdrawal gap."""
    announce = [(k, want[k]) for k in sorted(want, key=_order) if have.get(k) != want[k]]
    withdraw = [k for k in sorted(have, key=_order) if k not in want]
    return announce, withdraw


# Prefixes per command: one acknowledgement covers a whole batch, which keeps a full re-feed fast.
BATCH = 200

Batch = tuple[IPAddress, Route, tuple[IPNetwork, ...]]


def batches(items: list[tuple[Key, Route]], size: int = BATCH) -> list[Batch]:
    """Group (peer, prefix) -> route items into (peer, route, prefixes) batches of at most `size`."""
    groups: dict[tuple[IPAddress, Route], list[IPNetwork]] = {}
    for (peer, prefix), route in items:
        groups.setdefault((peer, route), []).append(prefix)
    out: list[Batch] = []
    for (peer, route), prefixes in groups.items():
        for start in range(0, len(prefixes), size):
            out.append((peer, route, tuple(prefixes[start : start + size])))
    return out


def announce(batch: Batch) -> str:
    peer, (nh, communities, large), prefixes = batch
    cmd = f"neighbor {peer} announce attributes next-hop {nh} origin igp"
    if communities:
        cmd += f" community [ {communities} ]"
    if large:
        cmd += f" large-community [ {large} ]"
    return cmd + " nlri " + " ".join(str(p) for p in prefixes)


def withdraw(batch: Batch) -> str:
    peer, (nh, _, _), prefixes = batch
    return f"neighbor {peer} withdraw attributes next-hop {nh} nlri " + " ".join(str(p) for p in prefixes)
