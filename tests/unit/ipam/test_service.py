"""How IPAM reads a Service (ours / foreign / none), what it asks for, and the patch it writes."""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kubevip.core.parse import service_from_dict
from kubevip.core.selection import ClassFilter, class_reason
from kubevip.core.views import IPFamily
from kubevip.ipam.allocator import Outcome
from kubevip.ipam.service import (
    ANNOTATION_INTERFACE,
    ANNOTATION_IPS,
    LABEL_KEY,
    LABEL_VALUE,
    Kind,
    allocation_patch,
    classify,
    release_patch,
    request_for,
)

V4, V6 = IPFamily.IPV4, IPFamily.IPV6
ip = ipaddress.ip_address


def svc(
    *, families: list[str] | None = None, policy: str | None = None,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None, lb_class: str | None = None, lb_ip: str | None = None,
    type_: str = "LoadBalancer",
) -> Any:
    spec: dict[str, Any] = {"type": type_, "ports": [{"port": 80, "protocol": "TCP"}]}
    if families is not None:
        spec["ipFamilies"] = families
    if policy:
        spec["ipFamilyPolicy"] = policy
    if lb_class:
        spec["loadBalancerClass"] = lb_class
    if lb_ip:
        spec["loadBalancerIP"] = lb_ip
    return service_from_dict({
        "metadata": {"name": "s", "namespace": "ns", "resourceVersion": "7",
                     "annotations": annotations or {}, "labels": labels or {}},
        "spec": spec,
    })


OURS = {LABEL_KEY: LABEL_VALUE}


def test_new_service_is_ours_with_nothing() -> None:
    c = classify(svc(), ClassFilter())
    assert c.kind is Kind.OURS and c.addresses == ()


def test_user_annotation_is_foreign_and_never_ours() -> None:
    c = classify(svc(annotations={ANNOTATION_IPS: "10.0.0.5,example.com"}), ClassFilter())
    assert c.kind is Kind.FOREIGN and c.addresses == (ip("10.0.0.5"),)
    assert classify(svc(lb_ip="10.0.0.6"), ClassFilter()).kind is Kind.FOREIGN


def test_labelled_is_ours_and_adopts_annotation_or_legacy_spec() -> None:
    c = classify(svc(annotations={ANNOTATION_IPS: "10.0.0.5,fd00::5"}, labels=OURS), ClassFilter())
    assert c.kind is Kind.OURS and c.addresses == (ip("10.0.0.5"), ip("fd00::5"))
    c = classify(svc(lb_ip="10.0.0.6", labels=OURS), ClassFilter())
    assert c.kind is Kind.OURS and c.addresses == (ip("10.0.0.6"),)


def test_classes() -> None:
    other = svc(lb_class="example.com/other", annotations={ANNOTATION_IPS: "10.0.0.1"})
    assert classify(other, ClassFilter()).kind is Kind.FOREIGN  # reserved, never allocated
    assert classify(svc(lb_class="example.com/other"), ClassFilter()).kind is Kind.NONE
    assert classify(svc(lb_class="kube-vip.io/kube-vip-class"), ClassFilter()).kind is Kind.OURS
    assert classify(svc(), ClassFilter(only=True)).kind is Kind.NONE
    assert classify(svc(lb_class="x/y"), ClassFilter(name="x/y", only=True)).kind is Kind.OURS
    assert classify(svc(annotations={"kube-vip.io/ignore": "true"}), ClassFilter()).kind is Kind.NONE
    assert classify(svc(type_="ClusterIP", labels=OURS), ClassFilter()).kind is Kind.NONE


def test_request_families_come_from_the_core() -> None:
    r = request_for(svc(families=["IPv6", "IPv4"], policy="PreferDualStack"))
    assert r.families == (V6, V4) and not r.require_all
    r = request_for(svc(families=["IPv4", "IPv6"], policy="RequireDualStack"))
    assert r.families == (V4, V6) and r.require_all
    r = request_for(svc(families=["IPv6", "IPv4"], policy="SingleStack"))
    assert r.families == (V6,)
    assert r.ports == frozenset({("TCP", 80)})


def _out(*addrs: str) -> Outcome:
    a = tuple(ip(x) for x in addrs)
    return Outcome(addresses=a, added=a, released=(), problems=(), complete=True)


def test_patch_single_vip_sets_spec_and_label_and_interface() -> None:
    p = allocation_patch(svc(), _out("10.0.0.1"), "eth1")
    assert p == {
        "metadata": {
            "resourceVersion": "7",
            "annotations": {ANNOTATION_IPS: "10.0.0.1", ANNOTATION_INTERFACE: "eth1"},
            "labels": {LABEL_KEY: LABEL_VALUE},
        },
        "spec": {"loadBalancerIP": "10.0.0.1"},
    }


def test_patch_dual_clears_spec_and_keeps_user_interface() -> None:
    view = svc(labels=OURS, lb_ip="10.0.0.1",
               annotations={ANNOTATION_IPS: "10.0.0.1", ANNOTATION_INTERFACE: "user0"})
    p = allocation_patch(view, _out("10.0.0.1", "fd00::1"), "eth1")
    assert p == {"metadata": {"resourceVersion": "7", "annotations": {ANNOTATION_IPS: "10.0.0.1,fd00::1"}},
                 "spec": {"loadBalancerIP": None}}


def test_patch_none_when_already_recorded() -> None:
    view = svc(labels=OURS, lb_ip="10.0.0.1", annotations={ANNOTATION_IPS: "10.0.0.1"})
    assert allocation_patch(view, _out("10.0.0.1"), None) is None
    assert allocation_patch(svc(), _out(), None) is None  # nothing allocated, nothing to say


def test_release_patch_only_for_ours() -> None:
    assert release_patch(svc(annotations={ANNOTATION_IPS: "10.0.0.1"})) is None
    p = release_patch(svc(type_="ClusterIP", labels=OURS, annotations={ANNOTATION_IPS: "10.0.0.1"}))
    assert p == {"metadata": {"resourceVersion": "7", "annotations": {ANNOTATION_IPS: None},
                              "labels": {LABEL_KEY: None}}}


entries = st.one_of(
    st.sampled_from(["10.0.0.1", "fd00::1", "10.0.0.300", "fd00::zz", "vip.example.com", " ", ""]),
    st.text(max_size=12),
)


@given(st.lists(entries, max_size=4).map(",".join), st.booleans())
def test_never_overwrites_an_unlabelled_annotation(text: str, labelled: bool) -> None:
    """A user's value, valid or not, is never IPAM's to replace: only an empty one asks for an address."""
    view = svc(annotations={ANNOTATION_IPS: text}, labels=OURS if labelled else {})
    c = classify(view, ClassFilter())
    user_wrote = any(part.strip() for part in text.split(","))
    if not labelled:
        assert c.kind is (Kind.FOREIGN if user_wrote else Kind.OURS)
        # A FOREIGN Service gets no allocation patch and no release patch: its value stays as written.
        assert release_patch(view) is None
        junk = [p.strip() for p in text.split(",") if p.strip() and p.strip() not in map(str, c.addresses)]
        assert set(c.invalid) == {j for j in junk if not _is_ip(j)}
    else:
        assert c.kind is Kind.OURS and not c.invalid


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def test_an_invalid_user_value_is_left_alone() -> None:
    """The issue's example: `10.0.0.300,fd00::zz` used to be replaced by an allocated address."""
    c = classify(svc(annotations={ANNOTATION_IPS: "10.0.0.300,fd00::zz"}), ClassFilter())
    assert c.kind is Kind.FOREIGN and c.addresses == () and c.invalid == ("10.0.0.300", "fd00::zz")


CLASSES = st.one_of(st.none(), st.sampled_from(["kube-vip.io/kube-vip-class", "example.com/other", "x"]))


@given(
    CLASSES,
    st.builds(ClassFilter, only=st.booleans(), name=st.sampled_from(["kube-vip.io/kube-vip-class", "x"]),
              legacy_handling=st.booleans()),
)
def test_ipam_allocates_exactly_for_the_classes_the_agent_handles(
    lb_class: str | None, f: ClassFilter
) -> None:
    """One class rule: IPAM allocates for a Service (no address yet) iff the agent would handle it."""
    view = svc(lb_class=lb_class)
    assert (classify(view, f).kind is Kind.OURS) == (class_reason(view, f) == "")
