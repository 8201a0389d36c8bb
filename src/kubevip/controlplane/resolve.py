"""Which control-plane VIPs `address` names, per family: literals as written, DNS names per `dns_mode`.

Pure: the DNS answers come in as data (see dns.py for the lookup), so every rule here is testable.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kubevip.errors import ConfigError
from kubevip.ip import IPAddress

DNS_MODES = ("first", "ipv4", "ipv6", "dual")
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Entry:
    """One item of `address`: an IP literal or a DNS name (exactly one is set)."""

    ip: IPAddress | None = None
    name: str = ""

    def __str__(self) -> str:
        return str(self.ip) if self.ip is not None else self.name


@dataclass(frozen=True)
class Resolved:
    """The control-plane VIP per family (None: that family has none) and why anything is missing."""

    v4: ipaddress.IPv4Address | None = None
    v6: ipaddress.IPv6Address | None = None
    problems: tuple[str, ...] = ()

    @property
    def addresses(self) -> tuple[IPAddress, ...]:
        """IPv4 first, then IPv6; only those that are set."""
        return tuple(a for a in (self.v4, self.v6) if a is not None)

    @property
    def empty(self) -> bool:
        return self.v4 is None and self.v6 is None


def _is_hostname(name: str) -> bool:
    labels = name.rstrip(".").split(".")
    return 0 < len(name) <= 253 and all(_LABEL.match(label) for label in labels)


def parse_addresses(raw: str, setting: str = "address") -> tuple[Entry, ...]:
    """`"10.0.0.5"`, `"10.0.0.5,fd00::5"`, `"cp.example.com"`: at most one literal per family, two entries."""
    items = [p.strip() for p in raw.split(",") if p.strip()]
    if len(items) > 2:
        raise ConfigError(setting, raw, "at most two entries: one IPv4 and one IPv6 address (or DNS names)")
    entries: list[Entry] = []
    families: set[int] = set()
    for item in items:
        try:
            ip = ipaddress.ip_address(item.strip("[]"))
        except ValueError:
            if not _is_hostname(item):
                raise ConfigError(setting, raw, f"{item!r} is neither an IP address nor a DNS name") from None
            entries.append(Entry(name=item.rstrip(".").lower()))
            continue
        if ip.version in families:
            raise ConfigError(setting, raw, f"two IPv{ip.version} addresses: give one IPv4 and one IPv6")
        if ip.is_unspecified or ip.is_multicast or ip.is_loopback:
            raise ConfigError(setting, raw, f"{ip} cannot be a VIP (unspecified, multicast or loopback)")
        families.add(ip.version)
        entries.append(Entry(ip=ip))
    return tuple(entries)


def names(entries: Sequence[Entry]) -> tuple[str, ...]:
    """The DNS names that need a lookup, in order."""
    return tuple(e.name for e in entries if e.ip is None)


def picks(mode: str, answers: Sequence[IPAddress]) -> tuple[IPAddress, ...]:
    """What one name contributes: `first` the resolver's first answer whatever its family (kube-vip's
    default), `ipv4`/`ipv6` the first answer of that family, `dual` the first of each family.
    """
    v4 = next((a for a in answers if a.version == 4), None)
    v6 = next((a for a in answers if a.version == 6), None)
    if mode == "first":
        return tuple(answers[:1])
    if mode == "ipv4":
        return (v4,) if v4 is not None else ()
    if mode == "ipv6":
        return (v6,) if v6 is not None else ()
    if mode == "dual":
        return tuple(a for a in (v4, v6) if a is not None)
    raise ValueError(f"unknown dns_mode {mode!r}")


def choose(entries: Sequence[Entry], mode: str, answers: Mapping[str, Sequence[IPAddress]]) -> Resolved:
    """The VIP per family; earlier entries win a family, and every loser or empty lookup is a problem."""
    chosen: dict[int, IPAddress] = {}
    problems: list[str] = []
    for e in entries:
        if e.ip is not None:
            got: tuple[IPAddress, ...] = (e.ip,)
        else:
            got = picks(mode, answers.get(e.name, ()))
            if not got:
                problems.append(f"{e.name}: no {'' if mode in ('first', 'dual') else mode + ' '}address"
                                f" (dns_mode={mode})")
        for a in got:
            if a.version in chosen and chosen[a.version] != a:
                problems.append(f"{e}: IPv{a.version} {a} ignored, {chosen[a.version]} came first")
                continue
            chosen[a.version] = a
    v4 = chosen.get(4)
    v6 = chosen.get(6)
    return Resolved(
        v4=v4 if isinstance(v4, ipaddress.IPv4Address) else None,
        v6=v6 if isinstance(v6, ipaddress.IPv6Address) else None,
        problems=tuple(problems),
    )
