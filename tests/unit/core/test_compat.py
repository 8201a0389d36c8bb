"""kube-vip's surface table: start-up WARN lines, UnsupportedAnnotation Events, migrate check, docs."""

from __future__ import annotations

from kubevip.core import compat
from kubevip.core.parse import service_from_dict
from kubevip.core.selection import ClassFilter
from kubevip.core.world import World, apply_event, snapshot
from tests.unit.objects import service


def test_table_has_each_name_once() -> None:
    names = [e.name for e in compat.SETTINGS] + [e.name for e in compat.ANNOTATIONS]
    assert len(names) == len(set(names))
    assert all(e.status in (compat.SUPPORTED, compat.DIFFERENT, compat.IGNORED) for e in compat.SETTINGS)
    assert all(e.name.startswith("kube-vip.io/") for e in compat.ANNOTATIONS)
    assert all(e.note for e in compat.SETTINGS + compat.ANNOTATIONS if e.status != compat.SUPPORTED)


def test_unsupported_settings_only_when_the_value_turns_a_feature_on() -> None:
    env = {"egress_withnftables": "true", "enable_node_labeling": "true", "dhcp_mode": "", "vip_arp": "true",
           "lb_enable": "false", "PATH": "/bin"}
    assert [e.name for e, _ in compat.unsupported_settings(env)] == ["enable_node_labeling"]


def _snap(*svcs):  # type: ignore[no-untyped-def]
    w = World()
    for s in svcs:
        apply_event(w, "Service", False, service_from_dict(s))
    return snapshot(w, ClassFilter(), False)


def test_one_unsupported_annotation_warning_per_service_naming_every_key() -> None:
    s = service("web", "192.0.2.1", annotations={
        "kube-vip.io/forwardUPNP": "true", "kube-vip.io/serviceVLAN": "200", "kube-vip.io/typo": "x",
        "kube-vip.io/ignore-service-security": "false",  # off: nothing lost
        "kube-vip.io/bgp-communities": "65000:1",  # kubevip's own
    })
    conds = [c for c in _snap(s).warnings["default/web"] if c.reason == compat.UNSUPPORTED_ANNOTATION]
    assert len(conds) == 1
    msg = conds[0].message
    assert "kube-vip.io/forwardUPNP " in msg and "kube-vip.io/serviceVLAN" in msg
    assert "kube-vip.io/typo" in msg
    assert "ignore-service-security" not in msg and "bgp-communities" not in msg
    plain = service("plain", "192.0.2.2")
    conds = [c for c in _snap(plain).warnings["default/plain"] if c.reason == compat.UNSUPPORTED_ANNOTATION]
    assert not conds


def test_invalid_lease_name_warns_and_claims_nothing() -> None:
    s = service("web", "192.0.2.1", annotations={"kube-vip.io/leaseName": "kube-node-lease/node1"})
    snap = _snap(s)
    assert snap.plans == ()
    [cond] = [c for c in snap.warnings["default/web"] if c.reason == "invalid-lease-name"]
    assert "kube-node-lease/node1" in cond.message and "default" in cond.message
