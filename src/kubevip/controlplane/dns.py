"""DNS lookups for `address` names (the I/O half of resolve.py): answers in the resolver's order."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence

from kubevip.controlplane.resolve import Entry, Resolved, choose, names
from kubevip.ip import IPAddress

log = logging.getLogger(__name__)

Lookup = Callable[[str], Awaitable[Sequence[IPAddress]]]


async def system_lookup(name: str) -> Sequence[IPAddress]:
    """Every address the system resolver returns for `name` (both families), in its order, no repeats."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        log.warning("cannot resolve control-plane address %s: %s", name, exc)
        return ()
    out: list[IPAddress] = []
    for _fam, _type, _proto, _canon, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in out:
            out.append(ip)
    return out


async def resolve(entries: Sequence[Entry], mode: str, lookup: Lookup = system_lookup) -> Resolved:
    """Look every name up once and choose the VIPs (pure rules in resolve.choose)."""
    answers = {n: tuple(await lookup(n)) for n in names(entries)}
    return choose(entries, mode, answers)
