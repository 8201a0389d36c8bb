"""What each agent publishes about itself for `kubevip status`: a report Lease per node (docs/status.md).

The agent writes the VIPs it has put on its interfaces (the kernel's truth after each pass, not what the
election says it should hold), with the election unit, that unit's Lease and since when; plus its version
and modes. `kubevip status` reads these Leases and nothing on the nodes. The encoding lives here, next to
its decoder, so the writer and the reader cannot drift apart.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass

from kubevip.core.views import IPAddress, IPFamily
from kubevip.errors import InputError
from kubevip.ip import NodeName

# Label selecting the report Leases (value "true"); distinct from the election's `kubevip.io/election`
# label, so the scalable elector's watch never sees them.
REPORT_LABEL = "kubevip.io/agent-report"
ANNOTATION_NODE = "kubevip.io/node"
ANNOTATION_VERSION = "kubevip.io/version"
ANNOTATION_ELECTION = "kubevip.io/election-mode"
ANNOTATION_MODE = "kubevip.io/mode"
ANNOTATION_VIPS = "kubevip.io/vips"
ANNOTATION_TRUNCATED = "kubevip.io/vips-truncated"
# Heartbeat: the Lease is renewed this often (and at once when the VIPs change); a report older than
# REPORT_DURATION seconds means the agent is down. Same order as the kubelet's node Lease (10 s / 40 s).
REPORT_PERIOD = 10.0
REPORT_DURATION = 30
# Annotations are capped at 256 KiB per object: a node holding more VIPs lists the first ones only.
MAX_VIPS = 1500

ELECTION_MODES = ("lease", "scalable", "none")


def report_lease_name(node: str) -> str:
    """`kubevip-agent.<node>`: the dot keeps it apart from kube-vip's `kubevip-<service>` Leases (a Service
    name has no dot); hashed when the node name would make an over-long object name."""
    name = f"kubevip-agent.{node}"
    if len(name) <= 253:
        return name
    return f"kubevip-agent.{hashlib.blake2b(node.encode(), digest_size=10).hexdigest()}"


@dataclass(frozen=True)
class HeldVip:
    """One VIP on one interface of the reporting node; `lease` is "namespace/name" or "" (no election)."""

    address: IPAddress
    interface: str
    unit: str
    lease: str
    since: str  # RFC 3339, UTC, when this node put the address there (or adopted it at start)

    @property
    def family(self) -> IPFamily:
        return IPFamily.of(self.address)


@dataclass(frozen=True)
class AgentReport:
    """One node's report."""

    node: NodeName
    version: str
    election: str  # lease | scalable | none
    mode: str  # arp | bgp
    vips: tuple[HeldVip, ...]
    truncated: int = 0  # VIPs held but not listed (MAX_VIPS)


def sort_key(v: HeldVip) -> tuple[int, int, str]:
    return (v.address.version, int(v.address), v.interface)


def encode(report: AgentReport) -> dict[str, str]:
    """The annotations of the report Lease."""
    vips = sorted(report.vips, key=sort_key)
    listed, dropped = vips[:MAX_VIPS], max(0, len(vips) - MAX_VIPS) + report.truncated
    out = {
        ANNOTATION_NODE: report.node,
        ANNOTATION_VERSION: report.version,
        ANNOTATION_ELECTION: report.election,
        ANNOTATION_MODE: report.mode,
        ANNOTATION_VIPS: json.dumps(
            [{"address": str(v.address), "interface": v.interface, "unit": v.unit, "lease": v.lease,
              "since": v.since} for v in listed],
            separators=(",", ":"),
        ),
        ANNOTATION_TRUNCATED: str(dropped),
    }
    return out


def _field(entry: Mapping[str, object], key: str, where: str) -> str:
    value = entry.get(key, "")
    if not isinstance(value, str):
        raise InputError(f"{where}: field {key!r} must be a string, got {value!r}")
    return value


def decode(annotations: Mapping[str, str], holder: str = "") -> AgentReport:
    """The report in a Lease's annotations; InputError names the annotation and the bad value."""
    node = annotations.get(ANNOTATION_NODE) or holder
    raw = annotations.get(ANNOTATION_VIPS, "[]") or "[]"
    try:
        entries = json.loads(raw)
    except ValueError as exc:
        raise InputError(f"annotation {ANNOTATION_VIPS}: not JSON ({exc}): {raw[:80]!r}") from None
    if not isinstance(entries, list):
        raise InputError(f"annotation {ANNOTATION_VIPS}: expected a list, got {raw[:80]!r}")
    vips: list[HeldVip] = []
    for i, entry in enumerate(entries):
        where = f"annotation {ANNOTATION_VIPS}[{i}]"
        if not isinstance(entry, Mapping):
            raise InputError(f"{where}: expected an object, got {entry!r}")
        text = _field(entry, "address", where)
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            raise InputError(f"{where}: field 'address' is not an IP address: {text!r}") from None
        vips.append(HeldVip(addr, _field(entry, "interface", where), _field(entry, "unit", where),
                            _field(entry, "lease", where), _field(entry, "since", where)))
    try:
        truncated = int(annotations.get(ANNOTATION_TRUNCATED, "0") or "0")
    except ValueError:
        raise InputError(
            f"annotation {ANNOTATION_TRUNCATED}: not a number: {annotations.get(ANNOTATION_TRUNCATED)!r}"
        ) from None
    return AgentReport(
        node=NodeName(node),
        version=annotations.get(ANNOTATION_VERSION, ""),
        election=annotations.get(ANNOTATION_ELECTION, ""),
        mode=annotations.get(ANNOTATION_MODE, ""),
        vips=tuple(sorted(vips, key=sort_key)),
        truncated=truncated,
    )

