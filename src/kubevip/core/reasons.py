"""Stable reason codes: the same words reach `kubevip explain`, Events, metrics and logs.

Codes are part of the public contract (docs/explain.md): add new ones, never rename or reuse one.
"""

from __future__ import annotations

# Why a VIP candidate (annotation entry or spec.loadBalancerIP) is not used.
NOT_AN_IP = "not-an-ip"
DNS_NAME = "dns-name"
ZONE_SUFFIX = "zone-suffix"
UNSPECIFIED = "unspecified"
LOOPBACK = "loopback"
MULTICAST = "multicast"
LINK_LOCAL = "link-local"
IPV4_MAPPED = "ipv4-mapped"
FAMILY_NOT_SERVED = "family-not-served"

# Why a whole Service is not announced (ServiceDecision.reason); "" means announced.
ANNOUNCED = ""
NOT_LOAD_BALANCER = "not-load-balancer"
IGNORED = "ignored"
NO_VIP = "no-vip"
REQUIRE_DUAL_STACK_UNMET = "require-dual-stack-unmet"

# Why this node does (not) take part for one family (NodeShare.reason).
SERVICE_NOT_ANNOUNCED = "service-not-announced"
NO_VIP_FOR_FAMILY = "no-vip-for-family"
NO_LOCAL_ENDPOINTS = "no-local-endpoints"
# Legacy Endpoints carry only the primary family: the secondary family follows the primary's nodes.
PRIMARY_FAMILY_NODES = "legacy-endpoints-primary-family-nodes"
NO_LOCAL_ENDPOINTS_PRIMARY_FAMILY = "no-local-endpoints-primary-family"

# Warning Events about `kube-vip.io/serviceInterface` (the agent's; `kubevip explain` never returns them).
# A Service sharing an address with an earlier Service that puts it on another interface.
SERVICE_INTERFACE_CONFLICT = "service-interface-conflict"
# The annotation names an interface that does not exist on the node holding the VIP: not announced there.
SERVICE_INTERFACE_MISSING = "service-interface-missing"

# Service status conditions (`kube-vip.io/IPv4Announced` / `IPv6Announced`, docs/status.md): the family has
# VIPs and the Service is announced, but no node holds any of them (no eligible node, the address lost to
# an earlier Service, or the election has not settled).
NO_HOLDER = "no-holder"

VIP_REJECTIONS = (
    NOT_AN_IP, DNS_NAME, ZONE_SUFFIX, UNSPECIFIED, LOOPBACK, MULTICAST, LINK_LOCAL, IPV4_MAPPED,
    FAMILY_NOT_SERVED,
)
SERVICE_VERDICTS = (ANNOUNCED, NOT_LOAD_BALANCER, IGNORED, NO_VIP, REQUIRE_DUAL_STACK_UNMET)
NODE_VERDICTS = (
    ANNOUNCED, SERVICE_NOT_ANNOUNCED, NO_VIP_FOR_FAMILY, NO_LOCAL_ENDPOINTS, PRIMARY_FAMILY_NODES,
    NO_LOCAL_ENDPOINTS_PRIMARY_FAMILY,
)
INTERFACE_WARNINGS = (SERVICE_INTERFACE_CONFLICT, SERVICE_INTERFACE_MISSING)
CONDITION_ONLY = (NO_HOLDER,)
ALL = VIP_REJECTIONS + SERVICE_VERDICTS[1:] + NODE_VERDICTS[1:] + INTERFACE_WARNINGS + CONDITION_ONLY


def condition_reason(code: str) -> str:
    """A code in the spelling metav1.Condition requires (CamelCase, no '-'): `no-local-endpoints` ->
    `NoLocalEndpoints`; "" (announced) -> `Announced`. One-to-one: every code is lower-case words."""
    if not code:
        return "Announced"
    return "".join(part[:1].upper() + part[1:] for part in code.split("-"))
