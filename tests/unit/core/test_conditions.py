"""Warning conditions: same reason codes as explain, stable Event names (a repeat is the same Event)."""

from __future__ import annotations

from kubevip.agent.leadership import Solo, unit_lease
from kubevip.core.conditions import warnings
from kubevip.core.parse import service_from_dict
from kubevip.core.plan import decide
from tests.unit.objects import service


def _warn(d: dict) -> set[str]:  # type: ignore[type-arg]
    v = service_from_dict(d)
    return {c.reason for c in warnings(decide(v, (), None, False), ())}


def test_reasons_match_explain_codes() -> None:
    assert _warn(service("a", "300.1.2.3, ::1, fe80::1%eth0, a.example")) == {
        "not-an-ip",
        "loopback",
        "zone-suffix",
        "dns-name",
        "no-vip",
    }
    assert _warn(service("b", "192.0.2.1", families=("IPv4", "IPv6"), policy="RequireDualStack")) == {
        "require-dual-stack-unmet"
    }
    assert _warn(service("c", "192.0.2.1")) == set()
    assert _warn(service("d", "not-an-ip", type_="ClusterIP")) == set()  # not ours to judge
    assert _warn(service("e", "bad", annotations={"kube-vip.io/ignore": "true"})) == set()


def test_event_names_are_stable_and_distinct() -> None:
    v = service_from_dict(service("a", "x1, x2"))
    conds = sorted(warnings(decide(v, (), None, False), ()))
    names = [c.event_name(v.uid) for c in conds]
    again = [c.event_name(v.uid) for c in sorted(warnings(decide(v, (), None, False), ()))]
    assert names == again
    assert len(set(names)) == len(names)
    assert all(len(n) <= 253 and n.startswith("a.kubevip-") for n in names)
    assert conds[0].event_name("other-uid") != names[0]  # a re-created Service gets its own Events


def test_unit_lease_names_follow_kube_vip() -> None:
    """Units carry the Lease's namespace/name (core.leases); a family suffix for a second Local family."""
    assert unit_lease("team/kubevip-web") == ("team", "kubevip-web")
    assert unit_lease("team/shared") == ("team", "shared")
    assert unit_lease("team/kubevip-web/IPv6") == ("team", "kubevip-web-ipv6")


async def test_solo_holds_eligible_units() -> None:
    async def cb(unit: str) -> None:
        return None

    s = Solo("n1", cb, cb)
    s.set_units({"a": None, "b": frozenset({"n2"}), "c": frozenset({"n1", "n2"})})
    assert [u for u in "abcd" if s.holds(u)] == ["a", "c"]
    assert s.holder("b", frozenset({"n2"})) is None
