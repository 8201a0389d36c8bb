"""The interface a Service asks for with `kube-vip.io/serviceInterface`: read and normalised, no lookups.

Whether that interface exists is a fact of each node, so the agent checks it; here the value only travels.
"""

from __future__ import annotations

from collections.abc import Iterable

from kubevip.core.views import IPAddress, ServiceView
from kubevip.ip import IPInterface

ANNOTATION_SERVICE_INTERFACE = "kube-vip.io/serviceInterface"
# kube-vip's `auto` (annotation and vip_servicesinterface): the interface whose subnet contains the VIP,
# else the node's own choice (pkg/instance autoFindInterface).
AUTO = "auto"
# Values that mean "no preference": the agent's own interface choice applies (as for vip_interface).
NOT_SET = ("",)
# The kernel's limit (IFNAMSIZ 16, including the terminating NUL).
MAX_NAME_BYTES = 15
# Characters the kernel refuses in a name: "/" and ":" and the ASCII white space its isspace() knows.
_FORBIDDEN = frozenset("/: \t\n\v\f\r")


def requested_interface(service: ServiceView) -> str:
    """The annotation's interface, trimmed; "" when absent or empty; `auto` stays `auto`."""
    value = (service.annotation(ANNOTATION_SERVICE_INTERFACE) or "").strip()
    return "" if value in NOT_SET else value


def interface_by_subnet(address: IPAddress, networks: Iterable[tuple[str, IPInterface]]) -> str:
    """`auto`: the interface with the most specific subnet containing `address` ("" when none).

    Host-length entries (/32, /128: VIPs themselves, point-to-point peers) are no subnet; ties go to the
    smallest name, so every pass and every node with the same addresses answers the same."""
    best: tuple[int, str] | None = None
    for ifname, iface in networks:
        net = iface.network
        if net.version != address.version or net.prefixlen >= address.max_prefixlen or address not in net:
            continue
        key = (-net.prefixlen, ifname)
        if best is None or key < best:
            best = key
    return "" if best is None else best[1]


def valid_interface_name(name: str) -> bool:
    """Whether Linux could have an interface of this name (its own rule: 1-15 bytes, not `.` or `..`,
    no `/`, `:` or white space); an invalid name can exist on no node."""
    if not name or name in (".", "..") or len(name.encode()) > MAX_NAME_BYTES:
        return False
    return not any(c in _FORBIDDEN for c in name)
