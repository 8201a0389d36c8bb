"""The whole-Service verdict and each node's share per family."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from kubevip.core import reasons
from kubevip.core.parse import endpoints_from_dict, endpointslice_from_dict, service_from_dict
from kubevip.core.plan import NodeShare, decide, node_share
from kubevip.core.views import IPFamily
from tests.unit.core import builders as b

V4, V6 = IPFamily.IPV4, IPFamily.IPV6
DUAL = {"families": ["IPv4", "IPv6"], "policy": "PreferDualStack"}


def run(svc_kw: dict[str, Any], slices: list[dict[str, Any]] = (), legacy: dict[str, Any] | None = None,  # type: ignore[assignment]
        use_legacy: bool = False, node: str = "n1") -> tuple[Any, dict[IPFamily, NodeShare]]:
    svc = service_from_dict(b.service(**svc_kw))
    d = decide(svc, [endpointslice_from_dict(s) for s in slices],
               endpoints_from_dict(legacy) if legacy else None, use_legacy)
    return d, dict(node_share(d, svc, node))


def test_require_dual_stack_unmet_announces_nothing() -> None:
    d, share = run({"families": ["IPv4", "IPv6"], "policy": "RequireDualStack", "lb_ips": "192.0.2.1"})
    assert not d.announce and d.reason == reasons.REQUIRE_DUAL_STACK_UNMET
    assert share == {V4: NodeShare(False, reasons.SERVICE_NOT_ANNOUNCED),
                     V6: NodeShare(False, reasons.SERVICE_NOT_ANNOUNCED)}


def test_require_dual_stack_met() -> None:
    d, share = run({"families": ["IPv4", "IPv6"], "policy": "RequireDualStack",
                    "lb_ips": "192.0.2.1,2001:db8::1"})
    assert d.announce and d.reason == ""
    assert share == {V4: NodeShare(True, ""), V6: NodeShare(True, "")}


def test_prefer_dual_stack_announces_families_with_a_vip() -> None:
    d, share = run({**DUAL, "lb_ips": "192.0.2.1"})
    assert d.announce
    assert share == {V4: NodeShare(True, ""), V6: NodeShare(False, reasons.NO_VIP_FOR_FAMILY)}


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"families": ["IPv4"]}, reasons.NO_VIP),
        ({"families": ["IPv4"], "lb_ips": "192.0.2.1", "svc_type": "ClusterIP"}, reasons.NOT_LOAD_BALANCER),
        ({"families": ["IPv4"], "lb_ips": "192.0.2.1", "annotations": {"kube-vip.io/ignore": "true"}},
         reasons.IGNORED),
        ({"families": ["IPv4"], "lb_ips": "2001:db8::1"}, reasons.NO_VIP),
    ],
)
def test_not_announced(kw: dict[str, Any], reason: str) -> None:
    d, share = run(kw)
    assert (d.announce, d.reason) == (False, reason)
    assert all(s == NodeShare(False, reasons.SERVICE_NOT_ANNOUNCED) for s in share.values())


def test_local_policy_needs_a_local_usable_endpoint_per_family() -> None:
    slices = [
        b.endpointslice("web-4", "IPv4", [b.ep("10.0.0.1", node="n1"), b.ep("10.0.0.2", node="n2")]),
        b.endpointslice("web-6", "IPv6", [b.ep("fd00::2", node="n2"),
                                          b.ep("fd00::1", node="n1", ready=False)]),
    ]
    kw = {**DUAL, "lb_ips": "192.0.2.1,2001:db8::1", "etp": "Local"}
    _, n1 = run(kw, slices, node="n1")
    assert n1 == {V4: NodeShare(True, ""), V6: NodeShare(False, reasons.NO_LOCAL_ENDPOINTS)}
    _, n2 = run(kw, slices, node="n2")
    assert n2 == {V4: NodeShare(True, ""), V6: NodeShare(True, "")}
    _, n3 = run(kw, slices, node="n3")
    none = NodeShare(False, reasons.NO_LOCAL_ENDPOINTS)
    assert n3 == {V4: none, V6: none}


def test_cluster_policy_every_node_with_a_vip_even_without_endpoints() -> None:
    _, share = run({**DUAL, "lb_ips": "192.0.2.1,2001:db8::1"}, node="anywhere")
    assert share == {V4: NodeShare(True, ""), V6: NodeShare(True, "")}


def test_legacy_secondary_family_uses_primary_nodes_and_says_so() -> None:
    kw = {"families": ["IPv6", "IPv4"], "policy": "PreferDualStack", "lb_ips": "192.0.2.1,2001:db8::1",
          "etp": "Local"}
    legacy = b.endpoints([("fd00::1", "n1")])
    d, n1 = run(kw, legacy=legacy, use_legacy=True, node="n1")
    assert d.endpoints[V4] == ()
    assert n1 == {V6: NodeShare(True, ""), V4: NodeShare(True, reasons.PRIMARY_FAMILY_NODES)}
    _, n2 = run(kw, legacy=legacy, use_legacy=True, node="n2")
    assert n2 == {V6: NodeShare(False, reasons.NO_LOCAL_ENDPOINTS),
                  V4: NodeShare(False, reasons.NO_LOCAL_ENDPOINTS_PRIMARY_FAMILY)}


def test_decision_equal_on_rerun() -> None:
    a, _ = run({**DUAL, "lb_ips": "192.0.2.1"})
    b_, _ = run({**DUAL, "lb_ips": "192.0.2.1"})
    assert a == b_


def test_reason_codes_are_unique_kebab_case() -> None:
    codes = [c for c in reasons.ALL if c]
    assert len(codes) == len(set(codes))
    assert all(c == c.lower() and " " not in c for c in codes)


def test_every_reason_code_is_unique_and_stable_text() -> None:
    """One vocabulary: each code once, spelled in lower-case words; members are their codes."""
    codes = [r.value for r in reasons.Reason]
    assert len(codes) == len(set(codes))
    assert all(c == "" or re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", c) for c in codes)
    assert all(f"{r}" == r.value and json.dumps(r) == json.dumps(r.value) for r in reasons.Reason)
    assert set(reasons.ALL) <= set(codes)


def test_cluster_without_endpoints_needs_kube_vips_opt_in() -> None:
    """kube-vip announces an ETP Cluster Service without endpoints only with
    kube-vip.io/allow-reconcile-without-endpoints: "true" (any case)."""
    kw = {**DUAL, "lb_ips": "192.0.2.1,2001:db8::1", "allow_no_endpoints": False}
    d, share = run(kw)
    assert not d.announce and d.reason == reasons.NO_ENDPOINTS
    assert share == {V4: NodeShare(False, reasons.SERVICE_NOT_ANNOUNCED),
                     V6: NodeShare(False, reasons.SERVICE_NOT_ANNOUNCED)}
    for value, announced in (("true", True), ("TRUE", True), ("false", False), ("yes", False)):
        d, _ = run({**kw, "annotations": {"kube-vip.io/allow-reconcile-without-endpoints": value}})
        assert d.announce is announced, value
    # One endpoint of either family, anywhere, is enough.
    d, share = run(kw, slices=[b.endpointslice("web-6", "IPv6", [b.ep("fd00::1", node="n9")])])
    assert d.announce and share[V4] == NodeShare(True, "")
    # An endpoint that is not usable (not ready) is none.
    d, _ = run(kw, slices=[b.endpointslice("web-4", "IPv4", [b.ep("10.0.0.1", ready=False)])])
    assert d.reason == reasons.NO_ENDPOINTS


def test_ignore_is_exactly_true_like_kube_vip() -> None:
    for value, ignored in (("true", True), ("True", False), (" true", False), ("false", False)):
        d, _ = run({"lb_ips": "192.0.2.1", "annotations": {"kube-vip.io/ignore": value}})
        assert (d.reason == reasons.IGNORED) is ignored, value


def test_a_hand_written_service_takes_its_families_from_its_vips() -> None:
    """No `ipFamilies`, no cluster IPs (a hand-written object): the families follow the VIP candidates,
    a DHCP entry (`0.0.0.0`) counting as the IPv4 it asks for."""

    def families(lb_ips: str, policy: str | None) -> tuple[IPFamily, ...]:
        svc = service_from_dict(b.service(families=None, policy=policy, lb_ips=lb_ips))
        return decide(svc, (), None, False).families

    assert families("2001:db8::1", None) == (V6,)
    assert families("2001:db8::1,192.0.2.1", "PreferDualStack") == (V6, V4)
    assert families("0.0.0.0", None) == (V4,)
    assert families("2001:db8::1,0.0.0.0", "PreferDualStack") == (V6, V4)


def test_a_dhcp_service_carries_its_annotation_problems() -> None:
    """A DHCP Service's unusable annotations reach the decision (conditions.py turns them into one Warning
    each, naming the annotation and value); a Service without a DHCP entry has none."""
    from kubevip.core.dhcp import ANNOTATION_HOSTNAME, ANNOTATION_REQUESTED_IP

    ann = {ANNOTATION_REQUESTED_IP: "nonsense", ANNOTATION_HOSTNAME: "not_a host"}
    d = decide(service_from_dict(b.service(lb_ips="0.0.0.0", annotations=ann)), (), None, False)
    assert [(p.annotation, p.value, p.problem) for p in d.dhcp_problems] == [
        (ANNOTATION_REQUESTED_IP, "nonsense", "not an IP address"),
        (ANNOTATION_HOSTNAME, "not_a host", "not an RFC 1123 host name"),
    ]
    assert len(d.dhcp) == 1 and d.dhcp[0].family == V4
    plain = decide(service_from_dict(b.service(lb_ips="192.0.2.1", annotations=ann)), (), None, False)
    assert plain.dhcp_problems == () and plain.dhcp == ()
