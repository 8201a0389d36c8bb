"""Which Lease a Service elects on (kube-vip's names) and the tenant-proof validation of leaseName."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kubevip.core import reasons
from kubevip.core.leases import annotation_problem, ref_problem, service_lease, split_ref
from kubevip.core.parse import service_from_dict
from kubevip.core.plan import decide
from kubevip.core.views import ServiceView
from tests.unit.core import builders as b


def svc(lease: str | None, ns: str = "team") -> ServiceView:
    ann = {} if lease is None else {"kube-vip.io/leaseName": lease}
    return service_from_dict(b.service("web", ns, lb_ips="192.0.2.1", annotations=ann))


def test_kube_vip_names() -> None:
    assert str(service_lease(svc(None))) == "team/kubevip-web"
    assert not service_lease(svc(None)).explicit
    assert str(service_lease(svc("shared"))) == "team/shared"  # verbatim, no kubevip- prefix
    assert service_lease(svc("shared")).explicit
    assert str(service_lease(svc("team/shared"))) == "team/shared"  # kube-vip's ns/name form
    assert str(service_lease(svc("  shared "))) == "team/shared"


def test_tenant_cannot_name_other_namespaces_or_paths() -> None:
    for bad in ("../../kube-node-lease/leases/node1", "kube-node-lease/node1", "kube-system/plndr-svcs-lock",
                "Shared", "a_b", "-x", "x/", "/x", "a/b/c", "x" * 254, "é"):
        assert annotation_problem(svc(bad)), bad
        d = decide(svc(bad), (), None, False)
        assert not d.announce and d.reason == reasons.INVALID_LEASE_NAME, bad
    for good in ("shared", "team/shared", "a.b-c", "x" * 248):
        assert annotation_problem(svc(good)) == "", good
    assert "own" in annotation_problem(svc("kube-system/plndr-svcs-lock"))


def test_absent_or_empty_annotation_is_fine() -> None:
    assert annotation_problem(svc(None)) == ""
    assert annotation_problem(svc("")) == ""
    assert str(service_lease(svc(""))) == "team/kubevip-web"


def test_settings_refs() -> None:
    assert split_ref("plndr-cp-lock", "kube-system") == ("kube-system", "plndr-cp-lock")
    assert split_ref("other/plndr-cp-lock", "kube-system") == ("other", "plndr-cp-lock")
    assert ref_problem("other/plndr-cp-lock", "kube-system") == ""
    assert ref_problem("Bad", "kube-system")
    assert ref_problem("a/b/c", "kube-system")


_chars = st.text(alphabet="abcXYZ09-._/ é%", max_size=30)


@given(_chars)
def test_a_valid_annotation_always_names_a_lease_in_the_own_namespace(value: str) -> None:
    """Whatever a tenant writes: either refused, or a DNS-1123 name in the Service's own namespace."""
    s = svc(value)
    if annotation_problem(s):
        assert decide(s, (), None, False).reason in (reasons.INVALID_LEASE_NAME,)
        return
    ref = service_lease(s)
    assert ref.namespace == "team"
    assert ref_problem(ref.name, "team") == ""
    assert "/" not in ref.name and ".." not in ref.name.split(".")


_SUB = ("not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', starting and ending"
        " alphanumeric)")
_LAB = "not a DNS-1123 label (lower-case letters, digits and '-', starting and ending alphanumeric)"


def test_each_problem_says_exactly_what_to_fix() -> None:
    """The Warning a tenant reads, and the limits at their exact boundaries (a Lease name of 253
    characters and a namespace of 63 are valid settings; an annotation keeps 5 for a family suffix)."""
    assert ref_problem("x" * 253, "kube-system") == ""
    assert ref_problem("x" * 254, "kube-system") == f"name {'x' * 254!r}: longer than 253 characters"
    assert ref_problem("n" * 63 + "/lock", "kube-system") == ""
    long_ns = "n" * 64
    assert ref_problem(f"{long_ns}/lock", "ns") == f"namespace {long_ns!r}: longer than 63 characters"
    assert ref_problem("/lock", "kube-system") == "namespace '': empty"
    assert ref_problem("ns/", "kube-system") == "name '': empty"
    assert ref_problem("Bad", "kube-system") == f"name 'Bad': {_SUB}"
    assert ref_problem("Bad_ns/lock", "kube-system") == f"namespace 'Bad_ns': {_LAB}"
    assert ref_problem("a/b/c", "kube-system") == "at most one '/' (namespace/name)"
    assert annotation_problem(svc("x" * 248)) == ""
    assert annotation_problem(svc("x" * 249)) == "name longer than 248 characters (room for a family suffix)"
    assert annotation_problem(svc("kube-system/lock")) == (
        "namespace 'kube-system' is not the Service's own ('team'): a Service may only elect on Leases of"
        " its namespace")
