"""VIP addresses on one interface, through netlink, with ownership that survives an agent restart.

Ownership: every address kubevip adds carries the netlink attribute IFA_PROTO = `ADDRESS_PROTO` (248,
Linux >= 5.18 keeps it for IPv4 and IPv6). An address is ours exactly when the kernel reports that value,
so a restarted agent finds its stale VIPs and never touches one it did not add. For kernels that drop the
attribute (Linux < 5.18; `kernel_keeps_proto` probes at start-up) the fallback is a JSON state file
listing what we added, plus, when kernel lifetimes are on, the lifetime as a marker: an address of ours
always has one, so a permanent address of the same value (re-added by an operator) is not ours. See
docs/networking.md.

Kernel lifetimes (docs/election.md): `add(..., lifetime=s)` / `add_many(..., lifetime=s)` set
valid_lft = preferred_lft = s seconds; `extend({(ip, plen): s})` renews them in one netlink batch of
precomputed requests (RTM_NEWADDR + NLM_F_REPLACE + IFA_CACHEINFO), re-creating an address the kernel
has removed meanwhile.

API (synchronous, each call is a few netlink round trips; from asyncio call it directly or via
`asyncio.to_thread`). Use one manager per interface and pass it the union of the VIPs that belong there:

    m = AddressManager("eth0")                 # or AddressManager(2, ns=Netns("node1"))
    m.ensure({(ip_address("10.0.0.9"), 32)})   # add missing, remove our others; returns Changes
    m.add(ip_address("fd00::9"))               # prefix 32/128 unless given; True if added now
    m.remove(ip_address("fd00::9"))            # only if ours; True if removed now
    m.owned()                                  # {(ip, prefixlen)} that we added and are present
    m.cleanup_stale(desired)                   # remove ours that are not in `desired`
    m.extend({(ip_address("10.0.0.9"), 32): 3})  # lifetimes of held VIPs, after a renewal
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
from kubevip.ip import IPAddress
from kubevip.listing import brief
from kubevip.net import rtnl_batch
from kubevip.net.interfaces import dump_addresses, link
from kubevip.net.namespace import OWN, Netns

log = logging.getLogger(__name__)

VipAddress = tuple[IPAddress, int]

ADDRESS_PROTO = 248
# The probe: a host address inside 127.0.0.0/8 on lo is local already (the /8 route), so adding and
# removing it changes nothing any socket sees; a 1 s lifetime removes it even if we die in between.
PROBE_ADDRESS = ipaddress.IPv4Address("127.254.0.248")


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


class NotExtended(NetworkError):
    """An add or a lifetime extension not sent: its holder's fencing deadline had passed (not a kernel
    error; the holder fences next)."""


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
        proto_kept: bool = True,
        lifetime_marker: bool = False,
    ) -> None:
        """`proto_kept=False`: the kernel does not keep IFA_PROTO (or the fallback is forced): ownership
        comes from `state_file` alone, and with `lifetime_marker` only non-permanent addresses count."""
        self.interface = interface
        self.ns = ns
        self.proto = proto
        self.proto_kept = proto_kept
        self.lifetime_marker = lifetime_marker
        self._state = _StateFile(Path(state_file)) if state_file else None
        # Extension requests built once per (interface index, VIP); a round only patches the lifetime.
        self._templates: dict[tuple[int, VipAddress], bytes] = {}

    # -- reading -------------------------------------------------------------------------------------

    def _index_and_name(self) -> tuple[int, str]:
        ln = link(self.interface, self.ns)
        return ln.index, ln.name

    def _dump(
        self, at: tuple[int, str] | None = None
    ) -> tuple[str, list[tuple[VipAddress, int | None, bool]]]:
        """(interface name, [(address, IFA_PROTO or None, permanent)])."""
        index, name = at or self._index_and_name()
        found = dump_addresses(self.ns, index, f"listing the addresses of {name} in {self.ns}")
        rows = [((a.ip, a.prefixlen), a.proto, a.permanent) for a in found]
        return name, rows

    def present(self) -> set[VipAddress]:
        """Every address on the interface, ours or not."""
        with self.ns.shared():
            return {a for a, _, _ in self._dump()[1]}

    def owned(self, at: tuple[int, str] | None = None) -> set[VipAddress]:
        """The addresses on the interface that kubevip added."""
        return self.owned_and_others(at)[0]

    def owned_and_others(self, at: tuple[int, str] | None = None) -> tuple[set[VipAddress], list[VipAddress]]:
        """From one dump: the addresses on the interface that kubevip added, and the others in the
        kernel's order."""
        with self.ns.shared():
            name, rows = self._dump(at)
        recorded = self._state.load().get(name, set()) if self._state else set()
        mine: set[VipAddress] = set()
        others: list[VipAddress] = []
        for a, proto, permanent in rows:
            if self._is_ours(a, proto, permanent, recorded):
                mine.add(a)
            else:
                others.append(a)
        return mine, others

    def _is_ours(self, a: VipAddress, proto: int | None, permanent: bool, recorded: set[str]) -> bool:
        if proto is not None and self.proto_kept:
            return proto == self.proto
        if self.lifetime_marker and permanent:
            return False  # ours always carry a lifetime: this one was re-added by someone else
        return _key(a) in recorded

    # -- changing ------------------------------------------------------------------------------------

    def add(self, ip: IPAddress, prefixlen: int | None = None, *, lifetime: int | None = None) -> bool:
        """Add one VIP (host prefix unless given; `lifetime` seconds, else permanent); True if added now,
        False if it was already there."""
        (a,) = normalise([(ip, host_prefix(ip) if prefixlen is None else prefixlen)])
        with self.ns.shared():
            return self._add(a, lifetime=lifetime)

    def _add(self, a: VipAddress, at: tuple[int, str] | None = None, lifetime: int | None = None) -> bool:
        done, errors = self._change("add", at or self._index_and_name(), [a], lifetime)
        if errors:
            raise errors[a[0]]
        return bool(done)

    def remove(self, ip: IPAddress, prefixlen: int | None = None) -> bool:
        """Remove one VIP if kubevip owns it (any prefix unless given); True if something was removed."""
        with self.ns.shared():
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
        with self.ns.shared():
            try:
                at = self._index_and_name()
                mine = sorted((a for a in self.owned(at) if a[0] in drop), key=_sort_key)
                return self._change("del", at, mine)[1]
            except NetworkError as exc:
                return dict.fromkeys(drop, exc)

    def add_many(
        self, vips: Iterable[tuple[IPAddress, int | None]], *, lifetime: int | None = None
    ) -> dict[IPAddress, NetworkError]:
        """`add` for several VIPs with one interface lookup and one netlink batch; per-VIP errors are
        returned."""
        return self.add_many_owned(vips, lifetime=lifetime, check_existing=False)[1]

    def add_many_owned(
        self,
        vips: Iterable[tuple[IPAddress, int | None]],
        *,
        lifetime: int | None = None,
        check_existing: bool = True,
        not_after: float | None = None,
    ) -> tuple[set[IPAddress], dict[IPAddress, NetworkError]]:
        """`add_many`, also returning the VIPs that are ours afterwards: added now, or already present
        and ours (one dump, only when some were present). Only those may have their lifetime extended: a
        replace would make a foreign address ours, and the kernel would then remove it."""
        errors: dict[IPAddress, NetworkError] = {}
        valid: set[VipAddress] = set()
        for ip, plen in vips:
            try:
                valid |= normalise([(ip, host_prefix(ip) if plen is None else plen)])
            except NetworkError as exc:
                errors[ip] = exc
        wanted = sorted(valid, key=_sort_key)
        if not wanted:
            return set(), errors
        with self.ns.shared():
            try:
                at = self._index_and_name()
                done, failed = self._change("add", at, wanted, lifetime, not_after)
                ours = {a[0] for a in done}
                present = [a for a in wanted if a[0] not in ours and a[0] not in failed]
                if present and check_existing:
                    owned = self.owned(at)
                    ours |= {a[0] for a in present if a in owned}
                return ours, {**failed, **errors}
            except NetworkError as exc:
                return set(), {**{a[0]: exc for a in wanted}, **errors}

    def extend(
        self, lifetimes: dict[VipAddress, int | None], not_after: float | None = None,
    ) -> dict[IPAddress, NetworkError]:
        """Set the lifetime of each VIP (ours: the caller extends only what it added; None: permanent
        from now on) in one netlink batch of precomputed requests; an address the kernel removed
        meanwhile comes back. Returns the errors per VIP; one not sent because `not_after` (monotonic)
        had passed is a `NotExtended`."""
        if not lifetimes:
            return {}
        try:
            index, name = self._index_and_name()
        except NetworkError as exc:
            return dict.fromkeys((a[0] for a in lifetimes), exc)
        templates = self._templates
        requests = []
        order = list(lifetimes.items())
        for seq, (a, seconds) in enumerate(order, start=1):
            template = templates.get((index, a))
            if template is None:
                ip, plen = a
                # Built with a lifetime (any): IFA_CACHEINFO must be there for `with_lifetime` to patch.
                template = templates[(index, a)] = rtnl_batch.address_request(
                    "replace", 0, index, ip, plen, self.proto,
                    rtnl_batch.IFA_F_NODAD if ip.version == 6 else 0, lifetime=1,
                )
            value = rtnl_batch.INFINITY_LIFE_TIME if seconds is None else seconds
            requests.append(rtnl_batch.with_lifetime(template, seq, value))
        try:
            with self.ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
                codes = rtnl_batch.run(sock, requests, f"extend VIP lifetimes on {name} in {self.ns}",
                                       not_after)
        except NetworkError as exc:
            return dict.fromkeys((a[0] for a, _ in order), exc)
        if len(templates) > 4 * len(lifetimes) + 64:  # VIPs come and go: keep the cache bounded
            keep = {(index, a) for a in lifetimes}
            for k in [k for k in templates if k not in keep]:
                del templates[k]
        return {
            a[0]: NotExtended(f"{_key(a)} on {name}: not extended, past the holder's fencing deadline")
            if code == errno.ECANCELED else
            NetworkError(f"cannot extend the lifetime of {_key(a)} on {name} in {self.ns}: "
                         f"{os.strerror(code)}")
            for (a, _), code in zip(order, codes, strict=True) if code
        }

    def _change(
        self, op: str, at: tuple[int, str], addrs: list[VipAddress], lifetime: int | None = None,
        not_after: float | None = None,
    ) -> tuple[list[VipAddress], dict[IPAddress, NetworkError]]:
        """Add or delete `addrs` in one netlink batch (net/rtnl_batch.py): those changed now, and the
        errors of those the kernel refused. Already present (add) or already gone (del) is no error.
        Adds only: nothing is sent from `not_after` (monotonic, the holder's fencing deadline) on."""
        if not addrs:
            return [], {}
        index, name = at
        requests = [
            rtnl_batch.address_request(
                op, seq, index, ip, plen, self.proto,
                rtnl_batch.IFA_F_NODAD if op == "add" and ip.version == 6 else 0,
                lifetime=lifetime if op == "add" else None,
            )
            for seq, (ip, plen) in enumerate(addrs, start=1)
        ]
        with self.ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
            codes = rtnl_batch.run(sock, requests, f"{op} VIPs on {name} in {self.ns}",
                                   not_after if op == "add" else None)
        adding = op == "add"
        harmless = (errno.EEXIST,) if adding else (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ESRCH)
        where = f"to {name}" if adding else f"from {name}"
        done: list[VipAddress] = []
        errors: dict[IPAddress, NetworkError] = {}
        for a, code in zip(addrs, codes, strict=True):
            if not code:
                done.append(a)
            elif code == errno.ECANCELED:
                errors[a[0]] = NotExtended(f"{_key(a)} {where}: not added, past the fencing deadline")
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
        with self.ns.shared():
            return {a for a in self.owned() - want if self._remove(a)}

    def ensure(self, desired: Iterable[VipAddress | IPAddress]) -> Changes:
        """Make our addresses on the interface exactly `desired` (idempotent; foreign ones stay untouched)."""
        want = normalise(desired)
        with self.ns.shared():
            # Removals first: an IPv6 address whose prefix changes must go before it can come back.
            removed = self.cleanup_stale(want)
            added = {a for a in want - self.present() if self._add(a)}
            foreign = want - self.owned()
        for a in sorted(foreign, key=_key):
            log.warning("VIP %s on %s was not added by kubevip: left alone", _key(a), self.interface)
        return Changes(frozenset(added), frozenset(removed), frozenset(foreign))


def kernel_keeps_proto(ns: Netns = OWN, proto: int = ADDRESS_PROTO) -> bool:
    """Whether this kernel stores IFA_PROTO (Linux >= 5.18): add PROBE_ADDRESS on lo with the mark and a
    1 s lifetime, read it back, remove it. An address already there (another agent probing in this
    namespace) is read as is; if it carries no protocol at all the kernel dropped ours."""
    with ns.shared():
        ln = link("lo", ns)
        ip = PROBE_ADDRESS
        add = rtnl_batch.address_request("add", 1, ln.index, ip, 32, proto, lifetime=1)
        with ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
            (code,) = rtnl_batch.run(sock, [add], f"IFA_PROTO probe on lo in {ns}")
            if code not in (0, errno.EEXIST):
                raise NetworkError(f"IFA_PROTO probe: cannot add {ip}/32 to lo in {ns}: {os.strerror(code)}")
            try:
                _, rows = AddressManager(ln.index, ns, proto=proto)._dump((ln.index, ln.name))
            finally:
                if code == 0:
                    rtnl_batch.run(sock, [rtnl_batch.address_request("del", 1, ln.index, ip, 32)], "probe")
    return any(row == (ip, 32) and p is not None for row, p, _ in rows)


@dataclass(frozen=True)
class Ownership:
    """How this process tells its addresses apart, decided once at start-up (`detect_ownership`)."""

    proto_kept: bool = True
    state_dir: Path | None = None
    lifetime_marker: bool = False

    def manager(self, interface: str | int, ns: Netns = OWN, proto: int = ADDRESS_PROTO) -> AddressManager:
        """An AddressManager with this ownership (one state file per protocol: the Service part and
        the control-plane part of one process must never take each other's addresses)."""
        fallback = not self.proto_kept and self.state_dir is not None
        state = self.state_dir / f"addresses-{proto}.json" if fallback and self.state_dir else None
        return AddressManager(interface, ns, proto=proto, state_file=state, proto_kept=self.proto_kept,
                              lifetime_marker=self.lifetime_marker)


def detect_ownership(
    ns: Netns = OWN,
    *,
    force_fallback: bool = False,
    state_dir: Path | str = "/var/lib/kubevip",
    lifetime_marker: bool = True,
    what: str = "VIPs",
) -> Ownership:
    """Probe IFA_PROTO (blocking) unless the fallback is forced; one log line when falling back."""
    if not force_fallback:
        try:
            if kernel_keeps_proto(ns):
                return Ownership()
            why = f"this kernel ({os.uname().release}) does not keep IFA_PROTO (Linux >= 5.18 does)"
        except NetworkError as exc:
            why = f"the IFA_PROTO probe failed ({exc})"
    else:
        why = "vip_ownership=statefile"
    marker = " and their kernel lifetime" if lifetime_marker else ""
    log.warning("address ownership of %s: %s; falling back to the state file in %s%s", what, why, state_dir,
                marker)
    return Ownership(False, Path(state_dir), lifetime_marker)


__all__ = [
    "ADDRESS_PROTO", "AddressManager", "Changes", "IPAddress", "Ownership", "VipAddress", "detect_ownership",
    "host_prefix", "kernel_keeps_proto", "normalise",
]
