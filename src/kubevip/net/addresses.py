"""VIP addresses on one interface, through netlink, with ownership that survives an agent restart.

Ownership: every address kubevip adds carries the netlink attribute IFA_PROTO = `ADDRESS_PROTO` (248,
Linux >= 5.18 keeps it for IPv4 and IPv6). An address is ours exactly when the kernel reports that value,
so a restarted agent finds its stale VIPs and never touches one it did not add. For kernels that drop the
attribute, an optional JSON state file lists what we added; it is consulted only for addresses whose
protocol the kernel does not report. See docs/networking.md.

API (synchronous, each call is a few netlink round trips; from asyncio call it directly or via
`asyncio.to_thread`). Use one manager per interface and pass it the union of the VIPs that belong there:

    m = AddressManager("eth0")                 # or AddressManager(2, ns=Netns("node1"))
    m.ensure({(ip_address("10.0.0.9"), 32)})   # add missing, remove our others; returns Changes
    m.add(ip_address("fd00::9"))               # prefix 32/128 unless given; True if added now
    m.remove(ip_address("fd00::9"))            # only if ours; True if removed now
    m.owned()                                  # {(ip, prefixlen)} that we added and are present
    m.cleanup_stale(desired)                   # remove ours that are not in `desired`
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kubevip.errors import NetworkError
from kubevip.listing import brief
from kubevip.net import rtnl_batch
from kubevip.net.interfaces import link
from kubevip.net.namespace import OWN, Netns

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
VipAddress = tuple[IPAddress, int]

ADDRESS_PROTO = 248


def host_prefix(ip: IPAddress) -> int:
    """32 for IPv4, 128 for IPv6: the default VIP prefix."""
    return ip.max_prefixlen


def normalise(items: Iterable[VipAddress | IPAddress]) -> set[VipAddress]:
    """Accept bare addresses (host prefix) or (address, prefixlen) pairs."""
    out: set[VipAddress] = set()
    for item in items:
        if isinstance(item, tuple):
            ip, plen = item
            if not 0 <= plen <= ip.max_prefixlen:
                raise NetworkError(f"prefix length {plen} is not valid for {ip}")
            out.add((ip, plen))
        else:
            out.add((item, host_prefix(item)))
    return out


@dataclass(frozen=True)
class Changes:
    """What one `ensure` call changed, and which desired addresses exist but belong to someone else."""

    added: frozenset[VipAddress] = frozenset()
    removed: frozenset[VipAddress] = frozenset()
    foreign: frozenset[VipAddress] = field(default_factory=frozenset)


class _StateFile:
    """Fallback ownership record for kernels without IFA_PROTO: {"ifname": ["ip/prefixlen", ...]}."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, set[str]]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable address state file %s: %s", self.path, exc)
            return {}
        return {str(k): {str(x) for x in v} for k, v in raw.items()} if isinstance(raw, dict) else {}

    def update(self, ifname: str, add: Iterable[str] = (), drop: Iterable[str] = ()) -> None:
        data = self.load()
        entries = (data.get(ifname, set()) | set(add)) - set(drop)
        if entries:
            data[ifname] = entries
        else:
            data.pop(ifname, None)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: sorted(v) for k, v in sorted(data.items())}, indent=1))
        os.replace(tmp, self.path)


def _key(a: VipAddress) -> str:
    return f"{a[0]}/{a[1]}"


def _sort_key(a: VipAddress) -> tuple[int, int, int]:
    return (a[0].version, int(a[0]), a[1])


class AddressManager:
    """Adds and removes VIPs on one interface; touches only addresses it added itself."""

    def __init__(
        self,
        interface: str | int,
        ns: Netns = OWN,
        *,
        proto: int = ADDRESS_PROTO,
        state_file: Path | str | None = None,
    ) -> None:
        self.interface = interface
        self.ns = ns
        self.proto = proto
        self._state = _StateFile(Path(state_file)) if state_file else None

    # -- reading -------------------------------------------------------------------------------------

    def _index_and_name(self) -> tuple[int, str]:
        ln = link(self.interface, self.ns)
        return ln.index, ln.name

    def _dump(self, at: tuple[int, str] | None = None) -> tuple[str, list[tuple[VipAddress, int | None]]]:
        index, name = at or self._index_and_name()
        rows: list[tuple[VipAddress, int | None]] = []
        with self.ns.iproute() as ipr:
            for msg in ipr.get_addr(index=index):
                addr = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
                if addr is None:
                    continue
                rows.append(((ipaddress.ip_address(addr), msg["prefixlen"]), msg.get_attr("IFA_PROTO")))
        return name, rows

    def present(self) -> set[VipAddress]:
        """Every address on the interface, ours or not."""
        with self.ns.iproute():
            return {a for a, _ in self._dump()[1]}

    def owned(self, at: tuple[int, str] | None = None) -> set[VipAddress]:
        """The addresses on the interface that kubevip added."""
        with self.ns.iproute():
            name, rows = self._dump(at)
        recorded = self._state.load().get(name, set()) if self._state else set()
        return {a for a, proto in rows if self._is_ours(a, proto, recorded)}

    def _is_ours(self, a: VipAddress, proto: int | None, recorded: set[str]) -> bool:
        if proto is not None:
            return proto == self.proto
        return _key(a) in recorded

    # -- changing ------------------------------------------------------------------------------------

    def add(self, ip: IPAddress, prefixlen: int | None = None) -> bool:
        """Add one VIP (host prefix unless given); True if added now, False if it was already there."""
        (a,) = normalise([(ip, host_prefix(ip) if prefixlen is None else prefixlen)])
        with self.ns.iproute():
            return self._add(a)

    def _add(self, a: VipAddress, at: tuple[int, str] | None = None) -> bool:
        done, errors = self._change("add", at or self._index_and_name(), [a])
        if errors:
            raise errors[a[0]]
        return bool(done)

    def remove(self, ip: IPAddress, prefixlen: int | None = None) -> bool:
        """Remove one VIP if kubevip owns it (any prefix unless given); True if something was removed."""
        with self.ns.iproute():
            mine = [a for a in self.owned() if a[0] == ip and (prefixlen is None or a[1] == prefixlen)]
            return any([self._remove(a) for a in mine])

    def _remove(self, a: VipAddress, at: tuple[int, str] | None = None) -> bool:
        done, errors = self._change("del", at or self._index_and_name(), [a])
        if errors:
            raise errors[a[0]]
        return bool(done)

    def remove_many(self, ips: Iterable[IPAddress]) -> dict[IPAddress, NetworkError]:
        """`remove` for several VIPs with one interface lookup, one address dump and one netlink batch
        (a pass that drops hundreds of VIPs must not dump the interface once per VIP); per-VIP errors are
        returned.
        """
        drop = set(ips)
        if not drop:
            return {}
        with self.ns.iproute():
            try:
                at = self._index_and_name()
                mine = sorted((a for a in self.owned(at) if a[0] in drop), key=_sort_key)
                return self._change("del", at, mine)[1]
            except NetworkError as exc:
                return dict.fromkeys(drop, exc)

    def add_many(self, vips: Iterable[tuple[IPAddress, int | None]]) -> dict[IPAddress, NetworkError]:
        """`add` for several VIPs with one interface lookup and one netlink batch; per-VIP errors are
        returned."""
        errors: dict[IPAddress, NetworkError] = {}
        valid: set[VipAddress] = set()
        for ip, plen in vips:
            try:
                valid |= normalise([(ip, host_prefix(ip) if plen is None else plen)])
            except NetworkError as exc:
                errors[ip] = exc
        wanted = sorted(valid, key=_sort_key)
        if not wanted:
            return errors
        with self.ns.iproute():
            try:
                at = self._index_and_name()
                return {**self._change("add", at, wanted)[1], **errors}
            except NetworkError as exc:
                return {**{a[0]: exc for a in wanted}, **errors}

    def _change(
        self, op: str, at: tuple[int, str], addrs: list[VipAddress]
    ) -> tuple[list[VipAddress], dict[IPAddress, NetworkError]]:
        """Add or delete `addrs` in one netlink batch (net/rtnl_batch.py): those changed now, and the
        errors of those the kernel refused. Already present (add) or already gone (del) is no error."""
        if not addrs:
            return [], {}
        index, name = at
        requests = [
            rtnl_batch.address_request(
                op, seq, index, ip, plen, self.proto,
                rtnl_batch.IFA_F_NODAD if op == "add" and ip.version == 6 else 0,
            )
            for seq, (ip, plen) in enumerate(addrs, start=1)
        ]
        with self.ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
            codes = rtnl_batch.run(sock, requests, f"{op} VIPs on {name} in {self.ns}")
        adding = op == "add"
        harmless = (errno.EEXIST,) if adding else (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ESRCH)
        where = f"to {name}" if adding else f"from {name}"
        done: list[VipAddress] = []
        errors: dict[IPAddress, NetworkError] = {}
        for a, code in zip(addrs, codes, strict=True):
            if not code:
                done.append(a)
            elif code not in harmless:
                verb = "add" if adding else "remove"
                why = os.strerror(code)
                errors[a[0]] = NetworkError(f"cannot {verb} {_key(a)} {where} in {self.ns}: {why}")
        if self._state:
            if adding and done:
                self._state.update(name, add={_key(a) for a in done})
            elif not adding:
                self._state.update(name, drop={_key(a) for a in addrs if a[0] not in errors})
        if done:
            log.info("%s %d VIPs %s: %s", "added" if adding else "removed", len(done), where,
                     brief(_key(a) for a in done))
        return done, errors

    def cleanup_stale(self, desired: Iterable[VipAddress | IPAddress]) -> set[VipAddress]:
        """Remove every address kubevip owns on this interface that is not in `desired`."""
        want = normalise(desired)
        with self.ns.iproute():
            return {a for a in self.owned() - want if self._remove(a)}

    def ensure(self, desired: Iterable[VipAddress | IPAddress]) -> Changes:
        """Make our addresses on the interface exactly `desired` (idempotent; foreign ones stay untouched)."""
        want = normalise(desired)
        with self.ns.iproute():
            # Removals first: an IPv6 address whose prefix changes must go before it can come back.
            removed = self.cleanup_stale(want)
            added = {a for a in want - self.present() if self._add(a)}
            foreign = want - self.owned()
        for a in sorted(foreign, key=_key):
            log.warning("VIP %s on %s was not added by kubevip: left alone", _key(a), self.interface)
        return Changes(frozenset(added), frozenset(removed), frozenset(foreign))


__all__ = [
    "ADDRESS_PROTO", "AddressManager", "Changes", "IPAddress", "VipAddress", "host_prefix", "normalise",
]
