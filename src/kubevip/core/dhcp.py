"""VIPs learnt from a DHCP server (kube-vip's `0.0.0.0`): which Services ask, for which family, with which
MAC, interface, client id and host name, and what a lease's timers mean for the VIP. Pure.

A Service asks for DHCP by writing `0.0.0.0` where an address goes (`spec.loadBalancerIP` or an entry of
`kube-vip.io/loadbalancerIPs`), as with kube-vip. The address is then a fact the holder of the Service's
election unit learns from its lease (`World.leased`), and from there it is a VIP like any other:
`core.vips.choose` checks its family and the address policy, claims and rows follow (docs/dhcp.md).

DHCPv6 (`::`) is refused with `dhcpv6-unsupported`: see docs/dhcp.md for why and what to do instead.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from kubevip.core import reasons
from kubevip.core.interface import valid_interface_name
from kubevip.core.views import IPAddress, IPFamily, ServiceKey, ServiceView

ANNOTATION_HWADDR = "kube-vip.io/hwaddr"
ANNOTATION_REQUESTED_IP = "kube-vip.io/requestedIP"
ANNOTATION_HOSTNAME = "kube-vip.io/loadbalancerHostname"
ANNOTATION_MACVLAN_NAME = "kube-vip.io/macvlanName"
SOURCE_DHCP = "dhcp"
DHCP_V4 = "0.0.0.0"
DHCP_V6 = "::"
# Prefix of the macvlan children we create (and alone may delete): "kvd" + 11 hex digits = 14 characters,
# inside IFNAMSIZ, and never a name of the node's own interfaces.
MACVLAN_PREFIX = "kvd"
# RFC 2132 option 12: 1..255 octets; we accept an RFC 1123 host name (or FQDN) only, so that a tenant's
# annotation cannot put arbitrary bytes on the wire.
_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$", re.IGNORECASE)
_MAC = re.compile(r"^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$", re.IGNORECASE)


def is_dhcp_text(text: str) -> bool:
    """Whether a VIP candidate, as written, asks for DHCP (exact spellings, as kube-vip compares them)."""
    return text in (DHCP_V4, DHCP_V6)


# The rule a `dhcp-needs-layer2` Warning quotes: the setting, and what to do instead.
LAYER2_RULE = (
    "bgp_enable=true: DHCP VIPs are layer 2 only (a lease is an address of one MAC on one segment);"
    " give the address explicitly, or use vip_arp=true"
)


def asks_dhcp(
    texts: Sequence[str], families: Sequence[IPFamily], layer2: bool = True,
) -> tuple[tuple[IPFamily, ...], dict[str, str]]:
    """The families a Service asks DHCP for, and the DHCP spellings refused (text -> reason code).

    `0.0.0.0` asks DHCPv4, only where the Service serves IPv4: an IPv4-only Service never gets an IPv6
    request, and an IPv6-only one never an IPv4 request. `::` is refused (no DHCPv6 client, docs/dhcp.md).
    Without `layer2` (BGP mode) `0.0.0.0` is refused too (`dhcp-needs-layer2`, docs/dhcp.md).
    """
    wanted: list[IPFamily] = []
    refused: dict[str, str] = {}
    for text in texts:
        if text == DHCP_V4:
            if IPFamily.IPV4 not in families:
                refused[text] = reasons.FAMILY_NOT_SERVED
            elif not layer2:
                refused[text] = reasons.DHCP_NEEDS_LAYER2
            elif IPFamily.IPV4 not in wanted:
                wanted.append(IPFamily.IPV4)
        elif text == DHCP_V6:
            refused[text] = (
                reasons.DHCPV6_UNSUPPORTED if IPFamily.IPV6 in families else reasons.FAMILY_NOT_SERVED
            )
    return tuple(wanted), refused


def derive_mac(service: str) -> str:
    """A stable MAC for a Service ("namespace/name"): the same on every node and after a re-creation of
    the Service, so the server sees one client whichever node holds it. Locally administered (bit 1 of the
    first octet), unicast (bit 0 clear): it never collides with a vendor's address."""
    digest = hashlib.sha256(b"kubevip-dhcp\x00" + service.encode()).digest()
    first = (digest[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in (first, *digest[1:6]))


def parse_mac(text: str) -> str | None:
    """A MAC written as six colon-separated octets, lower-cased; None unless unicast and non-zero."""
    text = text.strip()
    if not _MAC.match(text):
        return None
    octets = [int(p, 16) for p in text.split(":")]
    if octets[0] & 0x01 or not any(octets):
        return None
    return text.lower()


def client_id(mac: str) -> bytes:
    """RFC 2132 option 61 as DHCP clients commonly send it: hardware type 1 (Ethernet) + the MAC. The
    same MAC gives the same id on whichever node, so the server hands the same address back."""
    return bytes([1, *(int(p, 16) for p in mac.split(":"))])


def macvlan_name(service: str) -> str:
    """The macvlan child for a Service's DHCP VIP: derived from the key, so every node agrees on it."""
    return MACVLAN_PREFIX + hashlib.sha256(service.encode()).hexdigest()[:11]


def valid_hostname(text: str) -> bool:
    return bool(_HOSTNAME.match(text))


@dataclass(frozen=True)
class DhcpRequest:
    """What the holder asks the DHCP server for one family of one Service."""

    service: ServiceKey
    family: IPFamily
    mac: str
    interface: str
    # The address to ask for first (kube-vip.io/requestedIP of this family): after a failover, the one
    # the previous holder had. None: a plain DISCOVER.
    requested: IPAddress | None
    # DDNS: option 12 (kube-vip.io/loadbalancerHostname); "" sends none.
    hostname: str
    # True when `mac` came from kube-vip.io/hwaddr (else it is derived and the holder writes it there).
    mac_annotated: bool = False

    @property
    def client_id(self) -> bytes:
        return client_id(self.mac)


@dataclass(frozen=True)
class AnnotationProblem:
    """A DHCP annotation that cannot be used, as written, and what is used instead."""

    annotation: str
    value: str
    problem: str


def requested_addresses(text: str | None) -> dict[IPFamily, IPAddress]:
    """`kube-vip.io/requestedIP` per family: kube-vip writes "v4", "v6" or "v4,v6". Entries that do not
    parse are left out (see `problems`)."""
    out: dict[IPFamily, IPAddress] = {}
    for item in (text or "").split(","):
        try:
            addr = ipaddress.ip_address(item.strip())
        except ValueError:
            continue
        out.setdefault(IPFamily.of(addr), addr)
    return out


def request_of(
    service: ServiceView, family: IPFamily,
) -> tuple[DhcpRequest, tuple[AnnotationProblem, ...]]:
    """The DHCP request for `family` of `service`, and the annotations it could not use (bounded: at most
    one problem per annotation)."""
    problems: list[AnnotationProblem] = []
    raw_mac = service.annotation(ANNOTATION_HWADDR)
    mac = parse_mac(raw_mac) if raw_mac else None
    if raw_mac and mac is None:
        problems.append(AnnotationProblem(
            ANNOTATION_HWADDR, raw_mac[:64], "not a unicast MAC aa:bb:cc:dd:ee:ff"))
    raw_req = service.annotation(ANNOTATION_REQUESTED_IP)
    requested = requested_addresses(raw_req).get(family)
    if raw_req and raw_req.strip() and not requested_addresses(raw_req):
        problems.append(AnnotationProblem(ANNOTATION_REQUESTED_IP, raw_req[:64], "not an IP address"))
    if requested is not None and (
        requested.is_unspecified or requested.is_multicast or requested.is_loopback
    ):
        problems.append(AnnotationProblem(ANNOTATION_REQUESTED_IP, str(requested), "not a unicast address"))
        requested = None
    raw_host = (service.annotation(ANNOTATION_HOSTNAME) or "").strip()
    hostname = raw_host if valid_hostname(raw_host) else ""
    if raw_host and not hostname:
        problems.append(AnnotationProblem(ANNOTATION_HOSTNAME, raw_host[:64], "not an RFC 1123 host name"))
    raw_name = (service.annotation(ANNOTATION_MACVLAN_NAME) or "").strip()
    ifname = raw_name if raw_name and valid_interface_name(raw_name) else macvlan_name(service.key)
    if raw_name and ifname != raw_name:
        problems.append(AnnotationProblem(ANNOTATION_MACVLAN_NAME, raw_name[:64], "not an interface name"))
    return DhcpRequest(
        service=service.key, family=family, mac=mac or derive_mac(service.key), interface=ifname,
        requested=requested, hostname=hostname, mac_annotated=mac is not None,
    ), tuple(problems)


def annotations_to_write(
    request: DhcpRequest, leased: IPAddress, current: dict[str, str | None]
) -> dict[str, str]:
    """The annotations the holder writes once it holds a lease (kube-vip's names and formats):
    `kube-vip.io/hwaddr` (the MAC in use) and `kube-vip.io/requestedIP` (the leased address, next to the
    other family's entry if there is one). Only what differs from `current`."""
    others = {f: a for f, a in requested_addresses(current.get(ANNOTATION_REQUESTED_IP)).items()
              if f != request.family}
    others[request.family] = leased
    want = {
        ANNOTATION_HWADDR: request.mac,
        ANNOTATION_REQUESTED_IP: ",".join(str(others[f]) for f in IPFamily if f in others),
    }
    return {k: v for k, v in want.items() if current.get(k) != v}


# -- which clients run on this node -------------------------------------------------------------------


K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class ClientChanges(Generic[K]):
    """What the holder does with its DHCP clients this pass: `start` (also after a `restart` stop),
    stop with a RELEASE (`release`: the address goes back to the server) or without (`keep`: the next
    holder asks the same address with the same MAC and client id)."""

    start: frozenset[K]
    release: frozenset[K]
    keep: frozenset[K]


def client_changes(
    running: Mapping[K, object], asked: Mapping[K, object], held: Iterable[K], stopping: bool = False,
) -> ClientChanges[K]:
    """`running` and `asked` map a client key (Service, family) to what the client is bound to (MAC,
    macvlan, host name, parent: changing any of them means a new client); `asked` is every DHCP want of
    the cluster, `held` the keys whose unit this node holds.

    A RELEASE only when nobody asks any more (the Service is gone or no longer asks `0.0.0.0`), never on
    a failover, a change of binding, or while the agent stops: the address must survive those."""
    mine = {} if stopping else {k: asked[k] for k in held if k in asked}
    release: set[K] = set()
    keep: set[K] = set()
    for key, bound in running.items():
        if mine.get(key, _ABSENT) == bound:
            continue
        if key not in asked and not stopping:
            release.add(key)
        else:
            keep.add(key)
    start = {k for k in mine if k not in running or k in keep}
    return ClientChanges(frozenset(start), frozenset(release), frozenset(keep))


_ABSENT = object()


# -- lease timers -------------------------------------------------------------------------------------


class Phase(enum.StrEnum):
    """Where a lease stands (RFC 2131 4.4.5): BOUND until T1, RENEWING (unicast to the server) until T2,
    REBINDING (broadcast to any server) until it expires, then EXPIRED: the VIP is withdrawn."""

    BOUND = "bound"
    RENEWING = "renewing"
    REBINDING = "rebinding"
    EXPIRED = "expired"


@dataclass(frozen=True)
class LeaseTimes:
    """A lease's instants, in the caller's clock (monotonic seconds)."""

    obtained: float
    t1: float
    t2: float
    expires: float


def lease_times(
    obtained: float, lease_time: float, renewal: float | None = None, rebinding: float | None = None,
) -> LeaseTimes:
    """RFC 2131: T1 defaults to half the lease, T2 to 7/8 of it; server values are used only when they are
    in order (0 <= T1 <= T2 <= lease), so a server's odd options never make us renew after expiry."""
    lease_time = max(0.0, lease_time)
    t2 = rebinding if rebinding is not None and 0 <= rebinding <= lease_time else 0.875 * lease_time
    t1 = renewal if renewal is not None and 0 <= renewal <= t2 else min(0.5 * lease_time, t2)
    return LeaseTimes(obtained, obtained + t1, obtained + t2, obtained + lease_time)


def phase(times: LeaseTimes, now: float) -> Phase:
    if now >= times.expires:
        return Phase.EXPIRED
    if now >= times.t2:
        return Phase.REBINDING
    if now >= times.t1:
        return Phase.RENEWING
    return Phase.BOUND


def holds_vip(times: LeaseTimes | None, now: float) -> bool:
    """The VIP stays exactly while the lease is valid: through RENEWING and REBINDING (the server may be
    away for a while), never after expiry (the server may give the address to another client)."""
    return times is not None and phase(times, now) is not Phase.EXPIRED


def withdraw_in(times: LeaseTimes, now: float) -> float:
    """Seconds until the VIP must go (0 when it must go now)."""
    return max(0.0, times.expires - now)
