"""Sharing an address across namespaces needs consent: the same `kube-vip.io/allow-shared-ip` on both
Services, or `svc_cross_namespace_sharing=true`. Otherwise the earlier Service keeps it, whatever order
the events arrive in (every node sees its own order)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kubevip.core import reasons
from kubevip.core.parse import service_from_dict
from kubevip.core.selection import ClassFilter
from kubevip.core.world import SERVICE, World, apply_event, snapshot
from tests.unit.objects import service

SHARE = "kube-vip.io/allow-shared-ip"


def _snap(objs: list[dict], cross: bool = False, deleted: frozenset[int] = frozenset()):  # type: ignore[no-untyped-def,type-arg]
    w = World()
    for i, o in enumerate(objs):
        apply_event(w, SERVICE, False, service_from_dict(o), o["metadata"]["creationTimestamp"])
        if i in deleted:
            apply_event(w, SERVICE, True, service_from_dict(o))
    return snapshot(w, ClassFilter(), False, cross_namespace=cross)


A = service("web", "192.0.2.10", ns="team-a", ports=(("TCP", 80),), created="2026-01-01T00:00:00Z")
B = service("web", "192.0.2.10", ns="team-b", ports=(("TCP", 443),), created="2026-01-02T00:00:00Z")


def test_another_namespace_cannot_join_without_consent() -> None:
    snap = _snap([B, A])
    assert snap.plans[0].services == ("team-a/web",)
    assert [(c.service, c.winner, c.reason) for c in snap.clashes] == [
        ("team-b/web", "team-a/web", reasons.CROSS_NAMESPACE_SHARING)
    ]
    (warn,) = [c for c in snap.warnings["team-b/web"] if c.reason == reasons.CROSS_NAMESPACE_SHARING]
    assert "192.0.2.10" in warn.message and "team-a/web" in warn.message and SHARE in warn.message
    assert not snap.warnings["team-a/web"]
    assert "team-b/web" not in snap.granted


def test_consent_on_both_sides_or_the_operator_setting() -> None:
    a = service("web", "192.0.2.10", ns="team-a", ports=(("TCP", 80),), annotations={SHARE: "k"})
    b = service("web", "192.0.2.10", ns="team-b", ports=(("TCP", 443),), created="2026-01-02T00:00:00Z",
                annotations={SHARE: "k"})
    assert _snap([a, b]).plans[0].services == ("team-a/web", "team-b/web")
    one_sided = service("web", "192.0.2.10", ns="team-b", ports=(("TCP", 443),),
                        created="2026-01-02T00:00:00Z", annotations={SHARE: "k"})
    assert _snap([A, one_sided]).plans[0].services == ("team-a/web",)
    other_key = service("web", "192.0.2.10", ns="team-b", ports=(("TCP", 443),),
                        created="2026-01-02T00:00:00Z", annotations={SHARE: "other"})
    assert _snap([a, other_key]).plans[0].services == ("team-a/web",)
    assert _snap([A, B], cross=True).plans[0].services == ("team-a/web", "team-b/web")


def test_the_same_namespace_shares_as_before() -> None:
    b_same = service("api", "192.0.2.10", ns="team-a", ports=(("TCP", 443),), created="2026-01-02T00:00:00Z")
    assert _snap([A, b_same]).plans[0].services == ("team-a/web", "team-a/api")


def test_recreating_the_earlier_service_hands_the_address_over() -> None:
    """A re-created Service is a new, later object: the one that stayed is now the earlier one."""
    a_again = service("web", "192.0.2.10", ns="team-a", ports=(("TCP", 80),), created="2026-01-03T00:00:00Z")
    snap = _snap([A, B, a_again], deleted=frozenset({0}))
    assert snap.plans[0].services == ("team-b/web",)
    assert [c.service for c in snap.clashes] == ["team-a/web"]


def _key(o: dict) -> str:  # type: ignore[type-arg]
    return f"{o['metadata']['namespace']}/{o['metadata']['name']}"


namespaces = st.sampled_from(["team-a", "team-b", "team-c"])
shares = st.sampled_from(["", "", "k1", "k2"])
times = st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"])  # ties: the key decides


@st.composite
def services(draw: st.DrawFn) -> list[dict]:  # type: ignore[type-arg]
    out = []
    for i in range(draw(st.integers(2, 6))):
        ns = draw(namespaces)
        share = draw(shares)
        out.append(service(
            f"s{i}", draw(st.sampled_from(["192.0.2.10", "192.0.2.10,192.0.2.11"])), ns=ns,
            ports=(("TCP", draw(st.sampled_from([80, 443, 8080, 9090]))),), created=draw(times),
            annotations={SHARE: share} if share else None,
        ))
    return out


@settings(max_examples=200)
@given(services(), st.randoms(use_true_random=False), st.booleans())
def test_every_event_order_gives_the_same_holders(objs: list[dict], rnd, cross: bool) -> None:  # type: ignore[no-untyped-def,type-arg]
    first = _snap(objs, cross)
    shuffled = list(objs)
    rnd.shuffle(shuffled)
    again = _snap(shuffled, cross)
    assert again.plans == first.plans
    assert again.clashes == first.clashes
    assert again.warnings == first.warnings
    if not cross:
        # Every address is held by Services of one namespace, or by Services that all consent.
        for plan in first.plans:
            recs = [o for o in objs if _key(o) in plan.services]
            nss = {o["metadata"]["namespace"] for o in recs}
            if len(nss) > 1:
                keys = {(o["metadata"].get("annotations") or {}).get(SHARE, "") for o in recs}
                assert len(keys) == 1 and "" not in keys
            # the earliest Service of those wanting the address holds it
            wanting = [o for o in objs if plan.address.exploded in o["metadata"]["annotations"][
                "kube-vip.io/loadbalancerIPs"].split(",")]
            earliest = min(wanting, key=lambda o: (o["metadata"]["creationTimestamp"], _key(o)))
            assert plan.services[0] == _key(earliest)
