"""Stable reason codes: the same words reach `kubevip explain`, Events, metrics and logs.

Codes are part of the public contract (docs/explain.md): add new ones, never rename or reuse one.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Every reason code of kubevip in one place; members are `str`, so they compare, format and
    serialise as their code."""

    NOT_AN_IP = "not-an-ip"
    DNS_NAME = "dns-name"
    ZONE_SUFFIX = "zone-suffix"
    UNSPECIFIED = "unspecified"
    LOOPBACK = "loopback"
    MULTICAST = "multicast"
    LINK_LOCAL = "link-local"
    IPV4_MAPPED = "ipv4-mapped"
    FAMILY_NOT_SERVED = "family-not-served"
    TOO_MANY_ADDRESSES = "too-many-addresses"
    # The address policy (core/policy.py, docs/security.md).
    LIMITED_BROADCAST = "limited-broadcast"
    RESERVED_RANGE = "reserved-range"
    CONTROL_PLANE_VIP = "control-plane-vip"
    NODE_ADDRESS = "node-address"
    DEFAULT_GATEWAY = "default-gateway"
    SERVICE_CIDR = "service-cidr"
    SUBNET_NETWORK_ADDRESS = "subnet-network-address"
    SUBNET_BROADCAST_ADDRESS = "subnet-broadcast-address"
    NOT_ALLOWED = "not-allowed"
    ANNOUNCED = ""
    NOT_LOAD_BALANCER = "not-load-balancer"
    IGNORED = "ignored"
    NO_VIP = "no-vip"
    REQUIRE_DUAL_STACK_UNMET = "require-dual-stack-unmet"
    # `kube-vip.io/leaseName` is not a Lease name of the Service's own namespace (core.leases).
    INVALID_LEASE_NAME = "invalid-lease-name"
    # externalTrafficPolicy Cluster without any endpoint, and no allow-reconcile-without-endpoints.
    NO_ENDPOINTS = "no-endpoints"
    SERVICE_NOT_ANNOUNCED = "service-not-announced"
    NO_VIP_FOR_FAMILY = "no-vip-for-family"
    NO_LOCAL_ENDPOINTS = "no-local-endpoints"
    PRIMARY_FAMILY_NODES = "legacy-endpoints-primary-family-nodes"
    NO_LOCAL_ENDPOINTS_PRIMARY_FAMILY = "no-local-endpoints-primary-family"
    SERVICE_INTERFACE_CONFLICT = "service-interface-conflict"
    SERVICE_INTERFACE_MISSING = "service-interface-missing"
    SERVICE_INTERFACE_NOT_ALLOWED = "service-interface-not-allowed"
    CROSS_NAMESPACE_SHARING = "cross-namespace-sharing"
    # Service status conditions (`kube-vip.io/IPv4Announced` / `IPv6Announced`, docs/status.md): the
    # family has VIPs and the Service is announced, but no node holds any of them (no eligible node, the
    # address lost to an earlier Service, or the election has not settled).
    NO_HOLDER = "no-holder"

    # Agent Warnings and metrics.
    # A Service claims an address an earlier Service holds with an overlapping port.
    VIP_PORT_CLASH = "vip-port-clash"
    # Another implementation handles the Service's class.
    OTHER_LOAD_BALANCER_CLASS = "other-load-balancer-class"
    BGP_BAD_ANNOTATION = "bgp-bad-annotation"  # a Service's BGP community annotation does not parse
    BGP_NO_NEXT_HOP = "bgp-no-next-hop"  # no next hop of the VIP's family on this node
    INVALID_OBJECT = "invalid-object"  # an object the agent cannot parse (metrics only)
    # An egress annotation entry that cannot be used (the rest of the Service's egress applies).
    EGRESS_ANNOTATION_INVALID = "egress-annotation-invalid"
    # The node holding a VIP has no interface of its family (a single-stack node: no default route).
    NO_INTERFACE_FOR_FAMILY = "no-interface-for-family"

    # Node placement (core/eligibility.py, docs/placement.md): why a node may not hold a VIP.
    NODE_EXCLUDED = "node-excluded"  # label node.kubernetes.io/exclude-from-external-load-balancers
    NODE_CORDONED = "node-cordoned"  # spec.unschedulable with vip_drain_on_cordon=true
    NODE_SELECTOR_GLOBAL = "node-selector-global"  # vip_node_selector does not match the node
    NODE_SELECTOR_SERVICE = "node-selector-service"  # kube-vip.io/node-selector does not match
    NODE_SELECTOR_INVALID = "node-selector-invalid"  # kube-vip.io/node-selector does not parse
    NODE_LACKS_INTERFACE = "node-lacks-interface"  # layer 2: no kube-vip.io/serviceInterface here
    NODE_OFF_SUBNET = "node-off-subnet"  # layer 2: no interface on the VIP's subnet (others have one)
    NO_ELIGIBLE_NODE = "no-eligible-node"  # Warning: every node was refused

    # IPAM (docs/ipam.md).
    NO_POOL = "no-pool"  # IPAM: no pool for the namespace and family
    POOL_MALFORMED = "pool-malformed"  # IPAM: the namespace's pool does not parse
    POOL_EXHAUSTED = "pool-exhausted"  # IPAM: every address of the pool is taken
    OUTSIDE_EVERY_POOL = "outside-every-pool"  # IPAM: a requested address is in no pool
    ADDRESS_CONFLICT = "address-conflict"  # IPAM: a requested address is taken by another Service
    ADDRESS_REFUSED = "address-refused"  # IPAM: the address policy refuses a held address
    INVALID_ADDRESS = "invalid-address"  # IPAM: a user's value is not all IP addresses (left alone)

    # DHCP (docs/dhcp.md).
    DHCPV6_UNSUPPORTED = "dhcpv6-unsupported"  # a Service asks `::`: no DHCPv6 client
    DHCP_NEEDS_LAYER2 = "dhcp-needs-layer2"  # `0.0.0.0` in BGP mode (bgp_enable=true): DHCP VIPs are layer 2
    DHCP_ANNOTATION_INVALID = "dhcp-annotation-invalid"  # hwaddr / requestedIP / hostname unusable
    DHCP_LEASE_EXPIRED = "dhcp-lease-expired"  # Warning: the lease ran out, its VIP was withdrawn
    DHCP_FAILED = "dhcp-failed"  # Warning: the holder could not run a DHCP client (macvlan, socket)


# The module-level names below are the members' aliases (kept: `reasons.NOT_AN_IP`).
# Why a VIP candidate (annotation entry or spec.loadBalancerIP) is not used.
NOT_AN_IP = Reason.NOT_AN_IP
DNS_NAME = Reason.DNS_NAME
ZONE_SUFFIX = Reason.ZONE_SUFFIX
UNSPECIFIED = Reason.UNSPECIFIED
LOOPBACK = Reason.LOOPBACK
MULTICAST = Reason.MULTICAST
LINK_LOCAL = Reason.LINK_LOCAL
IPV4_MAPPED = Reason.IPV4_MAPPED
FAMILY_NOT_SERVED = Reason.FAMILY_NOT_SERVED
# `::` asks DHCPv6, which kubevip does not do (docs/dhcp.md).
DHCPV6_UNSUPPORTED = Reason.DHCPV6_UNSUPPORTED
# `0.0.0.0` while the agent announces by BGP (bgp_enable=true): a DHCP lease is an address of one MAC on
# one segment, which routes from every node do not carry (docs/dhcp.md).
DHCP_NEEDS_LAYER2 = Reason.DHCP_NEEDS_LAYER2
# More than `vips.MAX_PER_FAMILY` addresses of one family: the rest are not used (bounded work per Service).
TOO_MANY_ADDRESSES = Reason.TOO_MANY_ADDRESSES

# The address policy (core/policy.py, docs/security.md): addresses that are never a VIP.
LIMITED_BROADCAST = Reason.LIMITED_BROADCAST
RESERVED_RANGE = Reason.RESERVED_RANGE
CONTROL_PLANE_VIP = Reason.CONTROL_PLANE_VIP
NODE_ADDRESS = Reason.NODE_ADDRESS
DEFAULT_GATEWAY = Reason.DEFAULT_GATEWAY
SERVICE_CIDR = Reason.SERVICE_CIDR
SUBNET_NETWORK_ADDRESS = Reason.SUBNET_NETWORK_ADDRESS
SUBNET_BROADCAST_ADDRESS = Reason.SUBNET_BROADCAST_ADDRESS
# Outside `vip_allowed_cidrs` (and the namespace's IPAM pools when `vip_allowed_from_pools=true`).
NOT_ALLOWED = Reason.NOT_ALLOWED

# Why a whole Service is not announced (ServiceDecision.reason); "" means announced.
ANNOUNCED = Reason.ANNOUNCED
NOT_LOAD_BALANCER = Reason.NOT_LOAD_BALANCER
IGNORED = Reason.IGNORED
NO_VIP = Reason.NO_VIP
REQUIRE_DUAL_STACK_UNMET = Reason.REQUIRE_DUAL_STACK_UNMET
INVALID_LEASE_NAME = Reason.INVALID_LEASE_NAME
NO_ENDPOINTS = Reason.NO_ENDPOINTS

# Why this node does (not) take part for one family (NodeShare.reason).
SERVICE_NOT_ANNOUNCED = Reason.SERVICE_NOT_ANNOUNCED
NO_VIP_FOR_FAMILY = Reason.NO_VIP_FOR_FAMILY
NO_LOCAL_ENDPOINTS = Reason.NO_LOCAL_ENDPOINTS
# Legacy Endpoints carry only the primary family: the secondary family follows the primary's nodes.
PRIMARY_FAMILY_NODES = Reason.PRIMARY_FAMILY_NODES
NO_LOCAL_ENDPOINTS_PRIMARY_FAMILY = Reason.NO_LOCAL_ENDPOINTS_PRIMARY_FAMILY

# Warning Events about `kube-vip.io/serviceInterface` (the agent's; `kubevip explain` never returns them).
# A Service sharing an address with an earlier Service that puts it on another interface.
SERVICE_INTERFACE_CONFLICT = Reason.SERVICE_INTERFACE_CONFLICT
# The annotation names an interface that does not exist on the node holding the VIP: not announced there.
SERVICE_INTERFACE_MISSING = Reason.SERVICE_INTERFACE_MISSING
# The annotation names an interface `vip_allowed_interfaces` does not allow: the node's own choice applies.
SERVICE_INTERFACE_NOT_ALLOWED = Reason.SERVICE_INTERFACE_NOT_ALLOWED
# A Service names an address an earlier Service of another namespace holds, without both consenting
# (the same `kube-vip.io/allow-shared-ip` value) and without `svc_cross_namespace_sharing=true`.
CROSS_NAMESPACE_SHARING = Reason.CROSS_NAMESPACE_SHARING

# Service status conditions only (docs/status.md).
NO_HOLDER = Reason.NO_HOLDER
# Warning Event: an egress annotation entry that cannot be used (the rest of the Service's rule applies).
EGRESS_ANNOTATION_INVALID = Reason.EGRESS_ANNOTATION_INVALID

VIP_REJECTIONS = (
    NOT_AN_IP, DNS_NAME, ZONE_SUFFIX, UNSPECIFIED, LOOPBACK, MULTICAST, LINK_LOCAL, IPV4_MAPPED,
    FAMILY_NOT_SERVED, TOO_MANY_ADDRESSES, DHCPV6_UNSUPPORTED, DHCP_NEEDS_LAYER2,
)
POLICY_REJECTIONS = (
    LIMITED_BROADCAST, RESERVED_RANGE, CONTROL_PLANE_VIP, NODE_ADDRESS, DEFAULT_GATEWAY, SERVICE_CIDR,
    SUBNET_NETWORK_ADDRESS, SUBNET_BROADCAST_ADDRESS, NOT_ALLOWED,
)
SERVICE_VERDICTS = (
    ANNOUNCED, NOT_LOAD_BALANCER, IGNORED, NO_VIP, REQUIRE_DUAL_STACK_UNMET, INVALID_LEASE_NAME, NO_ENDPOINTS,
)
NODE_VERDICTS = (
    ANNOUNCED, SERVICE_NOT_ANNOUNCED, NO_VIP_FOR_FAMILY, NO_LOCAL_ENDPOINTS, PRIMARY_FAMILY_NODES,
    NO_LOCAL_ENDPOINTS_PRIMARY_FAMILY,
)
INTERFACE_WARNINGS = (SERVICE_INTERFACE_CONFLICT, SERVICE_INTERFACE_MISSING, SERVICE_INTERFACE_NOT_ALLOWED)
SHARING_WARNINGS = (CROSS_NAMESPACE_SHARING,)
# Why a node may not hold a VIP (core/eligibility.py), and the Warning when no node may.
PLACEMENT = (
    Reason.NODE_EXCLUDED, Reason.NODE_CORDONED, Reason.NODE_SELECTOR_GLOBAL,
    Reason.NODE_SELECTOR_SERVICE, Reason.NODE_SELECTOR_INVALID, Reason.NODE_LACKS_INTERFACE,
    Reason.NODE_OFF_SUBNET, Reason.NO_ELIGIBLE_NODE,
)
EGRESS_WARNINGS = (EGRESS_ANNOTATION_INVALID,)
CONDITION_ONLY = (NO_HOLDER,)
DHCP_WARNINGS = (Reason.DHCP_ANNOTATION_INVALID, Reason.DHCP_LEASE_EXPIRED, Reason.DHCP_FAILED)
ALL = (
    VIP_REJECTIONS + POLICY_REJECTIONS + SERVICE_VERDICTS[1:] + NODE_VERDICTS[1:] + INTERFACE_WARNINGS
    + SHARING_WARNINGS + EGRESS_WARNINGS + PLACEMENT + CONDITION_ONLY + DHCP_WARNINGS
)


def condition_reason(code: str) -> str:
    """A code in the spelling metav1.Condition requires (CamelCase, no '-'): `no-local-endpoints` ->
    `NoLocalEndpoints`; "" (announced) -> `Announced`. One-to-one: every code is lower-case words."""
    if not code:
        return "Announced"
    return "".join(part[:1].upper() + part[1:] for part in code.split("-"))
