"""Which Linux capabilities the agent needs for its settings, and which of them a process lacks (pure).

The manifests grant NET_ADMIN and NET_RAW and drop everything else; an agent started without one it needs
must stop at once naming it, not fail later one netlink call at a time (issue 15, docs/security.md).
"""

from __future__ import annotations

from dataclasses import dataclass

# linux/capability.h
CAP_NUMBERS = {"NET_BIND_SERVICE": 10, "NET_ADMIN": 12, "NET_RAW": 13, "SYS_ADMIN": 21}


@dataclass(frozen=True)
class Need:
    """One capability and the setting that needs it."""

    capability: str  # without the CAP_ prefix, as securityContext.capabilities spells it
    why: str


def needed(arp: bool) -> tuple[Need, ...]:
    """NET_ADMIN always (VIP addresses, routes, nftables packet rules, connection aborts); NET_RAW for
    ARP / unsolicited NA (vip_arp=true). BGP needs neither more: ExaBGP only connects out."""
    out = [Need("NET_ADMIN", "VIP addresses, routes and nftables rules (always)")]
    if arp:
        out.append(Need("NET_RAW", "gratuitous ARP / unsolicited NA (vip_arp=true)"))
    return tuple(out)


def effective_mask(proc_status: str) -> int | None:
    """The CapEff bit mask of a /proc/<pid>/status text; None when the line is missing or unreadable."""
    for line in proc_status.splitlines():
        key, _, value = line.partition(":")
        if key == "CapEff":
            try:
                return int(value.strip(), 16)
            except ValueError:
                return None
    return None


def missing(needs: tuple[Need, ...], mask: int) -> tuple[Need, ...]:
    """The needs whose capability bit is not set in `mask`."""
    return tuple(n for n in needs if not mask >> CAP_NUMBERS[n.capability] & 1)


def message(lacking: tuple[Need, ...]) -> str:
    """One line naming every missing capability and why it is needed."""
    parts = "; ".join(f"CAP_{n.capability} ({n.why})" for n in lacking)
    return (f"missing Linux capabilit{'y' if len(lacking) == 1 else 'ies'}: {parts}; grant "
            f"{', '.join(n.capability for n in lacking)} in the Pod's securityContext.capabilities.add")
