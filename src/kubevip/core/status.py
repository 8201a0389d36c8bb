"""`kubevip status`: who holds which VIP, from the API objects only (docs/status.md, the JSON contract).

Pure: the command reads Services, Nodes, Events and the agents' report Leases (core/report.py) and hands
them here with the current time. A VIP's holder is the node whose agent reports the address on its
interface, and only while that agent's report is fresh: the report is written from the kernel's state
after each pass, so the holder named is the node that has the address, not the one an election says
should have it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubevip.core.plan import ServiceDecision, decide
from kubevip.core.report import AgentReport, HeldVip
from kubevip.core.selection import ClassFilter, class_reason
from kubevip.core.views import ServiceView

LOAD_BALANCER = "LoadBalancer"


@dataclass(frozen=True)
class ReportLease:
    """A report Lease as read: the report, its holder (empty once released), renewTime and duration."""

    report: AgentReport
    holder: str
    renew: dt.datetime | None
    duration: int

    def up(self, now: dt.datetime) -> bool:
        """The agent is up while its Lease is held and renewed within its duration."""
        if not self.holder or self.renew is None:
            return False
        return now <= self.renew + dt.timedelta(seconds=self.duration)


@dataclass(frozen=True)
class WarningEvent:
    """A Warning Event kubevip wrote about a Service object (matched by uid)."""

    uid: str
    reason: str
    message: str
    node: str
    last: str  # RFC 3339


def parse_time(text: object) -> dt.datetime | None:
    """A Kubernetes Time / MicroTime ("...Z", optional fraction); None when absent or malformed."""
    if not isinstance(text, str) or not text:
        return None
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def latest_reports(reports: Iterable[ReportLease], now: dt.datetime) -> list[ReportLease]:
    """One report per node, by node name: a node may have left an older one in another namespace
    (vip_leasenamespace changed); the one that is up, then the latest renewed, speaks for it."""
    chosen: dict[str, ReportLease] = {}
    for r in reports:
        cur = chosen.get(r.report.node)
        if cur is None or _rank(r, now) > _rank(cur, now):
            chosen[r.report.node] = r
    return [chosen[n] for n in sorted(chosen)]


Holdings = Mapping[str, Sequence[tuple[str, HeldVip]]]


def holdings(reports: Iterable[ReportLease], now: dt.datetime) -> Holdings:
    """address -> [(node, entry)] by node name, over agents that are up; a down agent's report names
    nobody."""
    out: dict[str, list[tuple[str, HeldVip]]] = {}
    for r in latest_reports(reports, now):
        if r.up(now):
            for held in r.report.vips:
                out.setdefault(str(held.address), []).append((r.report.node, held))
    return out


def vip_entries(decision: ServiceDecision, holding: Holdings) -> list[dict[str, Any]]:
    """Per VIP of the decision, in its order: who holds it now (docs/status.md, `vips[]`)."""
    out = []
    for v in decision.vips:
        holders = sorted(holding.get(str(v.address), ()), key=lambda h: h[0])
        # Several fresh reports: the latest to put the address there is the holder (a node that crashed
        # keeps reporting it until its report expires; its successor's `since` is later). With ECMP
        # (BGP, no election) every one of them holds it: `holders` lists them all.
        chosen = None
        for h in holders:  # by name: the first of equal `since`s stays
            if chosen is None or h[1].since > chosen[1].since:
                chosen = h
        first = chosen[1] if chosen else None
        out.append({
            "address": str(v.address),
            "family": v.family.value,
            "holder": chosen[0] if chosen else None,
            "holders": [h[0] for h in holders],
            "interface": first.interface if first else None,
            "unit": first.unit if first else None,
            "lease": (first.lease or None) if first else None,
            "since": first.since if first else None,
        })
    return out


def _served(svc: ServiceView, held_any: bool) -> bool:
    """LoadBalancer Services of the default class filter, and any Service whose VIP an agent holds (an
    agent configured with another lb_class)."""
    return svc.type == LOAD_BALANCER and (class_reason(svc, ClassFilter()) == "" or held_any)


def build(
    services: Iterable[ServiceView],
    reports: Iterable[ReportLease],
    nodes: Iterable[str],
    events: Iterable[WarningEvent],
    now: dt.datetime,
    namespace: str | None = None,
) -> dict[str, Any]:
    """The `kubevip status -o json` document."""
    live = latest_reports(reports, now)
    up: dict[str, bool] = {r.report.node: r.up(now) for r in live}
    holding = holdings(live, now)
    by_uid: dict[str, list[WarningEvent]] = {}
    for e in events:
        by_uid.setdefault(e.uid, []).append(e)

    out_services: list[dict[str, Any]] = []
    svcs = sorted(
        (s for s in services if namespace is None or s.namespace == namespace), key=lambda s: s.key
    )
    for svc in svcs:
        decision = decide(svc, (), None, False)
        vips_of = [str(v.address) for v in decision.vips]
        if not _served(svc, any(a in holding for a in vips_of)):
            continue
        vips = vip_entries(decision, holding)
        out_services.append({
            "namespace": svc.namespace,
            "name": svc.name,
            "families": [f.value for f in decision.families],
            "announce": decision.announce,
            "reason": decision.reason,
            "vips": vips,
            "warnings": _warnings(by_uid.get(svc.uid, ())),
        })

    names = sorted(set(nodes) | set(up))
    reports_by_node: dict[str, ReportLease] = {r.report.node: r for r in live}
    out_nodes = []
    for name in names:
        lease = reports_by_node.get(name)
        is_up = up.get(name, False)
        out_nodes.append({
            "name": name,
            "up": is_up,
            "version": lease.report.version if lease else None,
            "election": lease.report.election if lease else None,
            "mode": lease.report.mode if lease else None,
            "vips": [str(v.address) for v in lease.report.vips] if lease and is_up else [],
            "vips_not_listed": lease.report.truncated if lease and is_up else 0,
        })
    return {"services": out_services, "nodes": out_nodes}


def _rank(r: ReportLease, now: dt.datetime) -> tuple[bool, dt.datetime]:
    return (r.up(now), r.renew or dt.datetime.min.replace(tzinfo=dt.UTC))


def _warnings(events: Sequence[WarningEvent]) -> list[dict[str, str]]:
    """One entry per (reason, message), the latest first; each names the node that reported it last."""
    latest: dict[tuple[str, str], WarningEvent] = {}
    for e in events:
        k = (e.reason, e.message)
        if k not in latest or e.last > latest[k].last:
            latest[k] = e
    ordered = sorted(latest.values(), key=lambda e: (e.last, e.reason, e.message), reverse=True)
    return [{"reason": e.reason, "message": e.message, "node": e.node, "last": e.last} for e in ordered]


def to_text(doc: Mapping[str, Any]) -> str:
    """Two tables: the Services' VIPs, then the nodes."""
    lines = []
    rows = [("SERVICE", "FAMILIES", "VIP", "HOLDER", "UNIT", "LEASE", "SINCE")]
    warn_lines: list[str] = []
    for s in doc["services"]:
        key = f"{s['namespace']}/{s['name']}"
        fams = ",".join(s["families"]) or "-"
        if not s["vips"]:
            rows.append((key, fams, "-", "-", "-", "-", "-"))
        for v in s["vips"]:
            holder = ",".join(v["holders"]) if v["holders"] else "(none)"
            rows.append(
                (key, fams, v["address"], holder, v["unit"] or "-", v["lease"] or "-", v["since"] or "-")
            )
        if not s["announce"] and s["reason"]:
            warn_lines.append(f"  {key}: not announced ({s['reason']})")
        for w in s["warnings"]:
            warn_lines.append(f"  {key}: {w['reason']}: {w['message']}")
    lines += _table(rows)
    if warn_lines:
        lines += ["", "WARNINGS", *warn_lines]
    lines.append("")
    nrows = [("NODE", "UP", "VERSION", "ELECTION", "MODE", "VIPS")]
    for n in doc["nodes"]:
        nrows.append((
            n["name"], "yes" if n["up"] else "no", n["version"] or "-", n["election"] or "-",
            n["mode"] or "-", " ".join(n["vips"]) or "-",
        ))
    lines += _table(nrows)
    return "\n".join(lines) + "\n"


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
