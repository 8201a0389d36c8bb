"""`kubevip status` (core/status.py): holders from fresh agent reports only, one per node, the contract."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress

from kubevip.core import parse
from kubevip.core.report import AgentReport, HeldVip
from kubevip.core.status import ReportLease, WarningEvent, build, parse_time, to_text
from kubevip.core.views import ServiceView
from kubevip.ip import NodeName
from tests.unit.core.builders import service

NOW = dt.datetime(2026, 12, 4, 7, 0, tzinfo=dt.UTC)
V4, V6 = ipaddress.ip_address("198.18.1.10"), ipaddress.ip_address("fd00::10")


def report(node: str, *vips: ipaddress.IPv4Address | ipaddress.IPv6Address, age: float = 1.0,
           holder: str | None = None) -> ReportLease:
    held = tuple(HeldVip(a, "eth0", f"default/web/{'IPv4' if a.version == 4 else 'IPv6'}", "ns/l",
                         "2026-12-04T06:59:00Z") for a in vips)
    return ReportLease(AgentReport(NodeName(node), "1.0", "scalable", "arp", held),
                       node if holder is None else holder, NOW - dt.timedelta(seconds=age), 30)


def web() -> list[ServiceView]:
    return [parse.service_from_dict(service(
        "web", families=["IPv4", "IPv6"], policy="PreferDualStack", lb_ips=f"{V4},{V6}"
    ))]


def test_each_family_names_its_own_holder() -> None:
    doc = build(web(), [report("n1", V4), report("n2", V6)], ["n1", "n2", "n3"], [], NOW)
    (svc,) = doc["services"]
    assert set(svc) >= {"namespace", "name", "families", "vips", "warnings"}
    assert svc["families"] == ["IPv4", "IPv6"]
    assert [(v["address"], v["family"], v["holder"]) for v in svc["vips"]] == [
        (str(V4), "IPv4", "n1"), (str(V6), "IPv6", "n2")
    ]
    assert all(set(v) >= {"address", "family", "holder", "unit", "since"} for v in svc["vips"])
    assert [(n["name"], n["up"], n["vips"]) for n in doc["nodes"]] == [
        ("n1", True, [str(V4)]), ("n2", True, [str(V6)]), ("n3", False, [])
    ]


def test_a_stale_or_released_report_names_nobody() -> None:
    doc = build(web(), [report("n1", V4, age=31), report("n2", V6, holder="")], [], [], NOW)
    assert [v["holder"] for v in doc["services"][0]["vips"]] == [None, None]
    assert [n["up"] for n in doc["nodes"]] == [False, False]


def test_the_fresh_report_of_a_node_wins_over_an_old_one() -> None:
    doc = build(web(), [report("n1", V6, age=40), report("n1", V4, age=2)], [], [], NOW)
    assert [v["holder"] for v in doc["services"][0]["vips"]] == ["n1", None]


def test_warnings_deduplicated_latest_first_and_only_of_this_uid() -> None:
    svcs = web()
    uid = svcs[0].uid
    evs = [
        WarningEvent(uid, "dns-name", "m1", "n1", "2026-12-04T06:00:00Z"),
        WarningEvent(uid, "dns-name", "m1", "n2", "2026-12-04T06:10:00Z"),
        WarningEvent(uid, "port-clash", "m2", "n1", "2026-12-04T06:20:00Z"),
        WarningEvent("other", "x", "y", "n1", "2026-12-04T06:30:00Z"),
    ]
    doc = build(svcs, [], [], evs, NOW)
    assert [(w["reason"], w["node"]) for w in doc["services"][0]["warnings"]] == [
        ("port-clash", "n1"), ("dns-name", "n2")
    ]
    assert "port-clash: m2" in to_text(doc)


def test_only_served_services_and_the_namespace_filter() -> None:
    other = parse.service_from_dict(service("db", namespace="other", lb_ips=str(V4)))
    cluster_ip = parse.service_from_dict(service("c", svc_type="ClusterIP"))
    doc = build([*web(), other, cluster_ip], [], [], [], NOW, namespace="default")
    assert [s["name"] for s in doc["services"]] == ["web"]


def test_parse_time() -> None:
    assert parse_time("2026-12-04T06:59:00.123456Z") == dt.datetime(2026, 12, 4, 6, 59, 0, 123456, dt.UTC)
    assert parse_time("garbage") is None and parse_time(None) is None


def test_after_a_crash_the_latest_to_take_the_address_is_the_holder() -> None:
    old = report("n1", V4)  # since 06:59:00, still fresh: it crashed without withdrawing
    new_held = (HeldVip(V4, "eth0", "default/web/IPv4", "ns/l", "2026-12-04T06:59:40Z"),)
    new = ReportLease(AgentReport(NodeName("n2"), "1.0", "scalable", "arp", new_held), "n2", NOW, 30)
    (v4, _) = build(web(), [old, new], [], [], NOW)["services"][0]["vips"]
    assert (v4["holder"], v4["holders"], v4["since"]) == ("n2", ["n1", "n2"], "2026-12-04T06:59:40Z")
    same = build(web(), [report("n2", V4), report("n1", V4)], [], [], NOW)["services"][0]["vips"][0]
    assert same["holder"] == "n1"  # equal since: the first by name


def test_the_whole_document_and_its_text_form() -> None:
    """The JSON contract (docs/status.md) field by field, and the two tables: a report renewed exactly a
    duration ago still counts (up), a down agent's VIPs and its count of unlisted ones are not shown,
    a node without a report is listed as down, a Service without VIP gets a "-" row and says why."""
    svcs = [*web(), parse.service_from_dict(service("bare"))]
    edge = ReportLease(dataclasses.replace(report("n2", V6).report, truncated=3), "n2",
                       NOW - dt.timedelta(seconds=30), 30)
    down = ReportLease(dataclasses.replace(report("n4", V4).report, truncated=2), "n4",
                       NOW - dt.timedelta(seconds=60), 30)
    last = "2026-12-04T06:58:00Z"
    events = [WarningEvent(svcs[0].uid, "NoEligibleNode", "no node may hold it", "n3", last)]
    doc = build(svcs, [report("n1", V4), edge, down], ["n1", "n2", "n3"], events, NOW)

    def vip(address: str, family: str, node: str) -> dict[str, object]:
        return {"address": address, "family": family, "holder": node, "holders": [node],
                "interface": "eth0", "lease": "ns/l", "since": "2026-12-04T06:59:00Z",
                "unit": f"default/web/{family}"}

    def node(
        name: str, up: bool, vips: list[str], unlisted: int = 0, reported: bool = True,
    ) -> dict[str, object]:
        r = ("1.0", "scalable", "arp") if reported else (None, None, None)
        return {"name": name, "up": up, "version": r[0], "election": r[1], "mode": r[2], "vips": vips,
                "vips_not_listed": unlisted}

    (bare,) = [s for s in doc["services"] if s["name"] == "bare"]
    assert not bare["announce"] and bare["reason"] and bare["vips"] == []
    assert [s for s in doc["services"] if s["name"] == "web"] == [{
        "namespace": "default", "name": "web", "families": ["IPv4", "IPv6"], "announce": True, "reason": "",
        "vips": [vip(str(V4), "IPv4", "n1"), vip(str(V6), "IPv6", "n2")],
        "warnings": [{"reason": "NoEligibleNode", "message": "no node may hold it", "node": "n3",
                      "last": last}],
    }]
    assert doc["nodes"] == [node("n1", True, [str(V4)]), node("n2", True, [str(V6)], 3),
                            node("n3", False, [], reported=False), node("n4", False, [])]
    assert to_text(doc) == "\n".join([
        "SERVICE       FAMILIES   VIP          HOLDER  UNIT              LEASE  SINCE",
        "default/bare  -          -            -       -                 -      -",
        "default/web   IPv4,IPv6  198.18.1.10  n1      default/web/IPv4  ns/l   2026-12-04T06:59:00Z",
        "default/web   IPv4,IPv6  fd00::10     n2      default/web/IPv6  ns/l   2026-12-04T06:59:00Z",
        "",
        "WARNINGS",
        f"  default/bare: not announced ({bare['reason']})",
        "  default/web: NoEligibleNode: no node may hold it",
        "",
        "NODE  UP   VERSION  ELECTION  MODE  VIPS",
        "n1    yes  1.0      scalable  arp   198.18.1.10",
        "n2    yes  1.0      scalable  arp   fd00::10",
        "n3    no   -        -         -     -",
        "n4    no   1.0      scalable  arp   -",
    ]) + "\n"


def test_the_fresh_report_wins_in_either_order_and_times_keep_their_offset() -> None:
    fresh, old = report("n1", V4, age=2), report("n1", V6, age=40)
    for reports in ([fresh, old], [old, fresh]):
        doc = build(web(), reports, [], [], NOW)
        assert [v["holder"] for v in doc["services"][0]["vips"]] == ["n1", None]
    assert parse_time("2026-12-04T09:00:00+02:00") == NOW
    assert parse_time("2026-12-04T07:00:00") == NOW  # no offset: UTC, comparable with the others


def test_a_service_of_another_class_is_listed_only_while_an_agent_holds_its_vip() -> None:
    other = service("web", families=["IPv4"], lb_ips=str(V4))
    other["spec"]["loadBalancerClass"] = "example.com/other"
    svcs = [parse.service_from_dict(other)]
    assert [s["name"] for s in build(svcs, [report("n1", V4)], [], [], NOW)["services"]] == ["web"]
    assert build(svcs, [report("n1")], [], [], NOW)["services"] == []


def test_of_two_stale_reports_of_a_node_the_later_renewed_speaks_for_it() -> None:
    def stale(version: str, age: float) -> ReportLease:
        r = report("n1", V4, age=age)
        return dataclasses.replace(r, report=dataclasses.replace(r.report, version=version))

    never = dataclasses.replace(stale("0.9", 0), renew=None)
    for reports in ([stale("1.1", 40), stale("1.0", 90), never], [never, stale("1.0", 90), stale("1.1", 40)]):
        (n1,) = build(web(), reports, [], [], NOW)["nodes"]
        assert (n1["up"], n1["version"]) == (False, "1.1")
