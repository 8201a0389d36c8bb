"""The interface a Service asks for with `kube-vip.io/serviceInterface`: read and normalised, no lookups.

Whether that interface exists is a fact of each node, so the agent checks it; here the value only travels.
"""

from __future__ import annotations

from kubevip.core.views import ServiceView

ANNOTATION_SERVICE_INTERFACE = "kube-vip.io/serviceInterface"
# Values that mean "no preference": the agent's own interface choice applies (as for vip_interface).
NOT_SET = ("", "auto")
# The kernel's limit (IFNAMSIZ 16, including the terminating NUL).
MAX_NAME_BYTES = 15
# Characters the kernel refuses in a name: "/" and ":" and the ASCII white space its isspace() knows.
_FORBIDDEN = frozenset("/: \t\n\v\f\r")


def requested_interface(service: ServiceView) -> str:
    """The annotation's interface, trimmed; "" when absent, empty or `auto`."""
    value = (service.annotation(ANNOTATION_SERVICE_INTERFACE) or "").strip()
    return "" if value in NOT_SET else value


def valid_interface_name(name: str) -> bool:
    """Whether Linux could have an interface of this name (its own rule: 1-15 bytes, not `.` or `..`,
    no `/`, `:` or white space); an invalid name can exist on no node."""
    if not name or name in (".", "..") or len(name.encode()) > MAX_NAME_BYTES:
        return False
    return not any(c in _FORBIDDEN for c in name)
