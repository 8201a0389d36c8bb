"""Which VIPs a Service gets per family, and why every other candidate address is rejected."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kubevip.core import reasons
from kubevip.core.dhcp import DHCP_V4, LAYER2_RULE, SOURCE_DHCP, asks_dhcp
from kubevip.core.policy import DEFAULT_POLICY, AddressPolicy, refusal
from kubevip.core.views import IPAddress, IPFamily, ServiceView

ANNOTATION_LOADBALANCER_IPS = "kube-vip.io/loadbalancerIPs"
SOURCE_ANNOTATION = "annotation"
SOURCE_SPEC = "spec"
# VIPs per family a Service may have; later entries are refused (reasons.TOO_MANY_ADDRESSES). Bounds what
# one Service costs every agent (claims, rows, Leases) whatever its annotation says.
MAX_PER_FAMILY = 64

# RFC 1123 host name; the last label must hold a letter so that "10.0.0.300" is not taken for a name.
_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
_DNS_NAME = re.compile(rf"^(?=.{{1,253}}\.?$){_LABEL}(?:\.{_LABEL})*\.?$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class VipChoice:
    """A VIP the Service gets; `source` is "annotation" or "spec"."""

    address: IPAddress
    family: IPFamily
    source: str


@dataclass(frozen=True)
class Rejection:
    """A candidate address that is not used, as written by the user, with a stable reason code."""

    address: str
    reason: str
    # The rule in words, for the Warning (policy refusals); "" when the code says it all.
    rule: str = field(default="", compare=False)


def candidates(service: ServiceView) -> tuple[tuple[str, ...], str]:
    """The raw VIP strings and their source: the annotation if non-empty, else `spec.loadBalancerIP`."""
    annotation = service.annotation(ANNOTATION_LOADBALANCER_IPS)
    if annotation is not None and annotation.strip():
        items = tuple(item.strip() for item in annotation.split(","))
        return tuple(item for item in items if item), SOURCE_ANNOTATION
    spec = (service.load_balancer_ip or "").strip()
    return ((spec,) if spec else ()), SOURCE_SPEC


def classify(text: str) -> IPAddress | str:
    """The address `text` names, or the reason code why it cannot be a VIP."""
    if "%" in text:
        return reasons.ZONE_SUFFIX
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        if _DNS_NAME.match(text) and re.search(r"[a-z]", text.rstrip(".").rsplit(".", 1)[-1], re.I):
            return reasons.DNS_NAME
        return reasons.NOT_AN_IP
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return reasons.IPV4_MAPPED
    if addr.is_unspecified:
        return reasons.UNSPECIFIED
    if addr.is_loopback:
        return reasons.LOOPBACK
    if addr.is_multicast:
        return reasons.MULTICAST
    if addr.is_link_local:
        return reasons.LINK_LOCAL
    return addr


def well_formed(service: ServiceView) -> tuple[IPAddress, ...]:
    """The usable-kind VIP candidates in source order, before any family filtering."""
    texts, _ = candidates(service)
    return tuple(a for a in (classify(t) for t in texts) if not isinstance(a, str))


def family_hints(service: ServiceView) -> tuple[IPAddress, ...]:
    """`well_formed`, with `0.0.0.0` kept as the IPv4 it asks DHCP for: the families of a hand-written
    object without `ipFamilies` or cluster IPs follow its VIP candidates (core/families.py)."""
    texts, _ = candidates(service)
    out: list[IPAddress] = []
    for t in texts:
        a = ipaddress.IPv4Address(0) if t == DHCP_V4 else classify(t)
        if not isinstance(a, str):
            out.append(a)
    return tuple(out)


def choose(
    service: ServiceView, families: Sequence[IPFamily], policy: AddressPolicy = DEFAULT_POLICY,
    leased: Mapping[IPFamily, IPAddress] | None = None, dhcp_layer2: bool = True,
) -> tuple[tuple[VipChoice, ...], tuple[Rejection, ...]]:
    """VIPs of served families (primary first, then source order; duplicates collapse) and rejections.

    Linear in the number of entries (a tenant writes the annotation): dicts, not list scans. At most
    `MAX_PER_FAMILY` VIPs per family; addresses the policy refuses are rejected with its reason and rule.
    A DHCP entry (`0.0.0.0`, core/dhcp.py) stands for the address `leased` for its family, when there is
    one (only the node holding the lease knows it); it passes the same family and policy checks. Without
    `dhcp_layer2` (BGP mode) it is refused, naming the setting.
    """
    texts, source = candidates(service)
    chosen: dict[VipChoice, None] = {}
    per_family: dict[IPFamily, int] = {}
    rejected: dict[Rejection, None] = {}
    _, dhcp_refused = asks_dhcp(texts, families, dhcp_layer2)
    for text in texts:
        if text in dhcp_refused:
            code = dhcp_refused[text]
            rule = LAYER2_RULE if code == reasons.DHCP_NEEDS_LAYER2 else ""
            rejected.setdefault(Rejection(text, code, rule))
            continue
        lease = (leased or {}).get(IPFamily.IPV4) if text == DHCP_V4 else None
        if text == DHCP_V4 and lease is None:
            continue  # asked, not leased (yet): the holder's DHCP client is at work
        result = lease if lease is not None else classify(text)
        source_of = SOURCE_DHCP if lease is not None else source
        if isinstance(result, str):
            rejected.setdefault(Rejection(text, result))
            continue
        family = IPFamily.of(result)
        if family not in families:
            rejected.setdefault(Rejection(text, reasons.FAMILY_NOT_SERVED))
            continue
        choice = VipChoice(result, family, source_of)
        if choice in chosen:
            continue
        refused = refusal(policy, result, service.namespace)
        if refused is not None:
            rejected.setdefault(Rejection(text, refused.reason, refused.rule))
            continue
        if per_family.get(family, 0) >= MAX_PER_FAMILY:
            rejected.setdefault(Rejection(
                text, reasons.TOO_MANY_ADDRESSES, f"at most {MAX_PER_FAMILY} addresses per family"
            ))
            continue
        per_family[family] = per_family.get(family, 0) + 1
        chosen[choice] = None
    rank = {f: i for i, f in enumerate(families)}
    ordered = sorted(chosen, key=lambda c: rank[c.family])  # stable: keeps source order within a family
    return tuple(ordered), tuple(rejected)
