"""Hypothesis properties of the decision core: no unserved family ever; order-free; deterministic."""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kubevip.core import reasons
from kubevip.core.parse import endpoints_from_dict, endpointslice_from_dict, service_from_dict
from kubevip.core.plan import decide, node_share
from kubevip.core.views import EndpointSliceView, IPFamily, LegacyEndpointsView, ServiceView
from kubevip.core.vips import classify
from tests.unit.core import builders as b

V4_ADDRS = ["192.0.2.1", "192.0.2.2", "10.0.0.1", "10.0.0.2", "10.0.0.3"]
V6_ADDRS = ["2001:db8::1", "2001:db8::2", "fd00::1", "fd00::2", "fd00::3"]
JUNK = ["", "bogus", "vip.example.com", "fe80::1%eth0", "127.0.0.1", "::ffff:10.0.0.1", "224.0.0.1", "::"]
NODES = ["n1", "n2", "n3", None]
maybe_bool = st.sampled_from([None, True, False])

endpoint = st.builds(
    b.ep, st.sampled_from(V4_ADDRS + V6_ADDRS), st.sampled_from(NODES), maybe_bool, maybe_bool, maybe_bool
)
slice_dict = st.builds(
    b.endpointslice,
    st.sampled_from(["web-a", "web-b", "web-c", "web-d"]),
    st.sampled_from(["IPv4", "IPv6", "FQDN"]),
    st.lists(endpoint, max_size=5),
    st.sampled_from(["web", "web", "other", None]),
    st.sampled_from(["default", "default", "prod"]),  # a same-named Service in another namespace
)


@st.composite
def service_dict(draw: st.DrawFn) -> dict[str, Any]:
    families = draw(st.one_of(st.none(), st.permutations(["IPv4", "IPv6"]).map(list),
                              st.sampled_from([["IPv4"], ["IPv6"]])))
    cluster = draw(st.one_of(st.none(), st.lists(st.sampled_from(["10.96.0.1", "fd00:96::1"]),
                                                 min_size=1, max_size=2, unique=True)))
    lb_ips = draw(st.one_of(st.none(), st.lists(st.sampled_from(V4_ADDRS + V6_ADDRS + JUNK), max_size=5)
                            .map(", ".join)))
    return b.service(
        families=families,
        policy=draw(st.sampled_from([None, "SingleStack", "PreferDualStack", "RequireDualStack"])),
        cluster_ips=cluster,
        lb_ips=lb_ips,
        lb_ip=draw(st.one_of(st.none(), st.sampled_from(V4_ADDRS + V6_ADDRS + JUNK))),
        etp=draw(st.sampled_from(["Cluster", "Local"])),
        svc_type=draw(st.sampled_from(["LoadBalancer", "LoadBalancer", "ClusterIP"])),
        namespace=draw(st.sampled_from(["default", "default", "prod"])),
    )


legacy_dict = st.one_of(
    st.none(),
    st.builds(
        b.endpoints,
        st.lists(st.tuples(st.sampled_from(V4_ADDRS + V6_ADDRS), st.sampled_from(["n1", "n2", "n3"])),
                 max_size=4),
        st.lists(st.tuples(st.sampled_from(V4_ADDRS + V6_ADDRS), st.sampled_from(["n1", "n2", "n3"])),
                 max_size=2),
        namespace=st.sampled_from(["default", "default", "prod"]),
    ),
)


def views(
    svc: dict[str, Any], slices: list[dict[str, Any]], legacy: dict[str, Any] | None
) -> tuple[ServiceView, list[EndpointSliceView], LegacyEndpointsView | None]:
    return (
        service_from_dict(svc),
        [endpointslice_from_dict(s) for s in slices],
        endpoints_from_dict(legacy) if legacy else None,
    )


@settings(max_examples=300)
@given(service_dict(), st.lists(slice_dict, max_size=5), legacy_dict, st.booleans())
def test_no_vip_or_endpoint_of_an_unserved_family(
    svc_d: dict[str, Any], slices_d: list[dict[str, Any]], legacy_d: dict[str, Any] | None, use_legacy: bool
) -> None:
    svc, slices, legacy = views(svc_d, slices_d, legacy_d)
    d = decide(svc, slices, legacy, use_legacy)
    assert len(set(d.families)) == len(d.families) <= 2
    if (svc.ip_family_policy or "SingleStack") == "SingleStack":
        assert len(d.families) <= 1
    if svc.ip_families:
        assert d.families[0] == svc.ip_families[0]
    assert all(v.family in d.families and IPFamily.of(v.address) == v.family for v in d.vips)
    assert tuple(d.endpoints) == d.families
    for family, eps in d.endpoints.items():
        assert all(ep.family == family == IPFamily.of(ep.address) for ep in eps)
        assert len({ep.address for ep in eps}) == len(eps)
    for r in d.rejected:
        assert r.reason in reasons.VIP_REJECTIONS
        if r.reason == reasons.FAMILY_NOT_SERVED:
            # `0.0.0.0` / `::` ask DHCP of their family (core/dhcp.py): refused where it is not served.
            addr = ipaddress.ip_address(r.address) if r.address in ("0.0.0.0", "::") else classify(r.address)
            assert not isinstance(addr, str) and IPFamily.of(addr) not in d.families
    assert d.announce == (d.reason == "")
    for node in ("n1", "n2", "n3"):
        shares = node_share(d, svc, node)
        assert tuple(shares) == d.families
        for family, share in shares.items():
            assert share.reason in reasons.NODE_VERDICTS
            if share.announce:
                assert d.announce and d.vips_of(family)
            if not d.announce:
                assert share.reason == reasons.SERVICE_NOT_ANNOUNCED


@settings(max_examples=200)
@given(service_dict(), st.lists(slice_dict, max_size=5), legacy_dict, st.booleans(), st.randoms())
def test_answer_does_not_depend_on_slice_or_endpoint_order(
    svc_d: dict[str, Any], slices_d: list[dict[str, Any]], legacy_d: dict[str, Any] | None,
    use_legacy: bool, rnd: Any,
) -> None:
    svc, slices, legacy = views(svc_d, slices_d, legacy_d)
    shuffled_d = [dict(s, endpoints=rnd.sample(s["endpoints"], len(s["endpoints"]))) for s in slices_d]
    rnd.shuffle(shuffled_d)
    if legacy_d:
        subset = legacy_d["subsets"][0]
        legacy_d = dict(legacy_d, subsets=[dict(subset, addresses=rnd.sample(subset["addresses"],
                                                                            len(subset["addresses"])))])
    _, slices2, legacy2 = views(svc_d, shuffled_d, legacy_d)
    first = decide(svc, slices, legacy, use_legacy)
    second = decide(svc, slices2, legacy2, use_legacy)
    assert first == second
    for node in ("n1", "n2", "n3"):
        assert dict(node_share(first, svc, node)) == dict(node_share(second, svc, node))


@given(service_dict(), st.lists(slice_dict, max_size=4), legacy_dict, st.booleans())
def test_analysing_twice_gives_the_same_answer(
    svc_d: dict[str, Any], slices_d: list[dict[str, Any]], legacy_d: dict[str, Any] | None, use_legacy: bool
) -> None:
    svc, slices, legacy = views(svc_d, slices_d, legacy_d)
    assert decide(svc, slices, legacy, use_legacy) == decide(svc, slices, legacy, use_legacy)
    again = views(svc_d, slices_d, legacy_d)
    assert decide(again[0], again[1], again[2], use_legacy) == decide(svc, slices, legacy, use_legacy)


def _requested(svc_d: dict[str, Any]) -> list[str]:
    """The VIP texts a Service asks for, read from the raw dict (annotation wins when non-empty)."""
    ann = (svc_d["metadata"].get("annotations") or {}).get("kube-vip.io/loadbalancerIPs")
    if ann is not None and ann.strip():
        return [t.strip() for t in ann.split(",") if t.strip()]
    spec = (svc_d["spec"].get("loadBalancerIP") or "").strip()
    return [spec] if spec else []


def _reports(
    namespace: str, slices_d: list[dict[str, Any]], legacy_d: dict[str, Any] | None, use_legacy: bool
) -> list[tuple[str, bool, bool, bool]]:
    """(address, ready, serving, terminating) of every endpoint report of the Service `namespace`/web,
    read from the raw dicts with Kubernetes' defaults (unset ready = true, serving = ready)."""
    out: list[tuple[str, bool, bool, bool]] = []
    if use_legacy:
        if legacy_d and legacy_d["metadata"]["namespace"] == namespace:
            for subset in legacy_d["subsets"]:
                out += [(a["ip"], True, True, False) for a in subset.get("addresses") or []]
                out += [(a["ip"], False, False, False) for a in subset.get("notReadyAddresses") or []]
        return out
    for s in slices_d:
        labels = s["metadata"]["labels"]
        if (
            labels.get("kubernetes.io/service-name") != "web"
            or s["metadata"]["namespace"] != namespace
            or s["addressType"] == "FQDN"
        ):
            continue
        for e in s["endpoints"]:
            cond = e["conditions"]
            ready = cond.get("ready", True)
            out += [(a, ready, cond.get("serving", ready), cond.get("terminating", False))
                    for a in e["addresses"]]
    return out


@settings(max_examples=300)
@given(service_dict(), st.lists(slice_dict, max_size=5), legacy_dict, st.booleans())
def test_nothing_is_dropped_silently(
    svc_d: dict[str, Any], slices_d: list[dict[str, Any]], legacy_d: dict[str, Any] | None, use_legacy: bool
) -> None:
    """Completeness (the property above is soundness): every requested VIP text is either a VIP or a
    rejection with a reason, and every usable endpoint of a served family is in the decision."""
    svc, slices, legacy = views(svc_d, slices_d, legacy_d)
    d = decide(svc, slices, legacy, use_legacy)
    for text in _requested(svc_d):
        addr = classify(text)
        if not isinstance(addr, str) and IPFamily.of(addr) in d.families:
            assert addr in {v.address for v in d.vips}, f"{text} of a served family is not a VIP"
        else:
            assert any(r.address == text for r in d.rejected), f"{text} neither a VIP nor rejected"
    reports = _reports(svc_d["metadata"]["namespace"], slices_d, legacy_d, use_legacy)
    for family in d.families:
        mine = [r for r in reports if IPFamily.of(ipaddress.ip_address(r[0])) == family]
        got = {str(ep.address) for ep in d.endpoints[family]}
        ready = {a for a, is_ready, _, _ in mine if is_ready}
        if ready:
            assert got == ready, f"{family}: usable {got} but ready {ready}"
            continue
        # None ready: the serving-and-terminating ones (kube-proxy's fallback); an address whose every
        # report says so must be there, and nothing that was never reported so.
        fallback = {a for a, _, serving, terminating in mine if serving and terminating}
        always = {a for a in fallback if all(s and t for b, _, s, t in mine if b == a)}
        assert always <= got <= fallback, f"{family}: usable {got}, fallback {fallback}"
