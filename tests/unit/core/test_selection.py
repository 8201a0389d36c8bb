"""Which Services this agent handles, by `spec.loadBalancerClass` (kube-vip's lb_class_* settings)."""

from __future__ import annotations

import pytest

from kubevip.core.parse import service_from_dict
from kubevip.core.selection import OTHER_CLASS, ClassFilter, class_reason
from tests.unit.core import builders as b

MINE = "kube-vip.io/kube-vip-class"


def with_class(cls: str | None) -> dict[str, object]:
    d = b.service()
    if cls is not None:
        d["spec"]["loadBalancerClass"] = cls
    return d


@pytest.mark.parametrize(
    ("cls", "only", "legacy", "handled"),
    [
        # lb_class_only: exactly our class, never a Service without one
        (MINE, True, True, True),
        (None, True, True, False),
        ("other.io/lb", True, True, False),
        (MINE, True, False, True),
        (None, True, False, False),
        # default: no class or ours; another implementation's class is left to it
        (None, False, True, True),
        (MINE, False, True, True),
        ("other.io/lb", False, True, False),
        # lb_class_legacy_handling=false: the class is not consulted at all
        ("other.io/lb", False, False, True),
        (None, False, False, True),
    ],
)
def test_class_decides_which_services_are_handled(
    cls: str | None, only: bool, legacy: bool, handled: bool,
) -> None:
    svc = service_from_dict(with_class(cls))
    assert svc.load_balancer_class == cls
    got = class_reason(svc, ClassFilter(only=only, legacy_handling=legacy))
    assert got == ("" if handled else OTHER_CLASS)


def test_a_renamed_class() -> None:
    f = ClassFilter(name="example.com/vip")
    assert class_reason(service_from_dict(with_class("example.com/vip")), f) == ""
    assert class_reason(service_from_dict(with_class(MINE)), f) == OTHER_CLASS
    assert class_reason(service_from_dict(with_class(MINE)), ClassFilter(only=True, name="example.com/vip")) \
        == OTHER_CLASS
