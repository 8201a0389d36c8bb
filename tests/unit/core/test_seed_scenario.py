"""Regression: the seed scenario (SingleStack IPv4 Service over dual-stack pods) must stay IPv4 only.

kube-vip 0.8.2 took the first endpoint whatever its family and kept only the last EndpointSlice it saw;
on this input that picks an IPv6 pod address for an IPv4 Service.
"""

from __future__ import annotations

import copy
import ipaddress
import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubevip.core.parse import endpoints_from_dict, endpointslice_from_dict, service_from_dict
from kubevip.core.plan import NodeShare, decide, node_share
from kubevip.core.views import IPFamily

SEED = Path(__file__).resolve().parents[3] / "examples" / "seed-scenario.yaml"
V4 = IPFamily.IPV4


@pytest.fixture()
def seed() -> dict[str, list[dict[str, Any]]]:
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in yaml.safe_load_all(SEED.read_text()):
        by_kind.setdefault(doc["kind"], []).append(doc)
    return by_kind


def test_seed_input_has_both_families_and_ipv6_comes_first(seed: dict[str, list[dict[str, Any]]]) -> None:
    # Guard the fixture itself: the trap (an IPv6 slice before the IPv4 one) must stay in the file.
    slices = seed["EndpointSlice"]
    assert [s["addressType"] for s in slices] == ["IPv6", "IPv4"]
    first_endpoint = slices[0]["endpoints"][0]["addresses"][0]
    assert ipaddress.ip_address(first_endpoint).version == 6
    assert seed["Service"][0]["spec"]["ipFamilies"] == ["IPv4"]


def test_seed_scenario_endpointslices_ipv4_only(seed: dict[str, list[dict[str, Any]]]) -> None:
    svc = service_from_dict(seed["Service"][0])
    slices = [endpointslice_from_dict(s) for s in seed["EndpointSlice"]]
    for order in itertools.permutations(slices):
        d = decide(svc, order, None, use_legacy=False)
        assert d.families == (V4,)
        assert [str(v.address) for v in d.vips] == ["192.0.2.10"]
        assert d.announce and d.rejected == ()
        assert list(d.endpoints) == [V4]
        assert [(str(e.address), e.node) for e in d.endpoints[V4]] == [
            ("10.244.1.5", "node-a"), ("10.244.2.7", "node-b")]
        assert dict(node_share(d, svc, "node-a")) == {V4: NodeShare(True, "")}
        assert dict(node_share(d, svc, "node-c")) == {V4: NodeShare(False, "no-local-endpoints")}


def test_seed_scenario_legacy_endpoints_ipv4_only(seed: dict[str, list[dict[str, Any]]]) -> None:
    svc = service_from_dict(seed["Service"][0])
    raw = copy.deepcopy(seed["Endpoints"][0])
    # Also carry the pods' IPv6 addresses, first, as a hand-made or mirrored Endpoints object might.
    raw["subsets"].insert(0, {"addresses": [{"ip": "fd00:10:244:1::5", "nodeName": "node-a"},
                                            {"ip": "fd00:10:244:3::9", "nodeName": "node-c"}]})
    for legacy_dict in (seed["Endpoints"][0], raw):
        d = decide(svc, [], endpoints_from_dict(legacy_dict), use_legacy=True)
        assert d.families == (V4,)
        assert list(d.endpoints) == [V4]
        assert [str(e.address) for e in d.endpoints[V4]] == ["10.244.1.5", "10.244.2.7"]
        assert dict(node_share(d, svc, "node-b")) == {V4: NodeShare(True, "")}
        assert dict(node_share(d, svc, "node-c")) == {V4: NodeShare(False, "no-local-endpoints")}


def test_seed_scenario_terminating_pod_used_only_when_nothing_is_ready(
    seed: dict[str, list[dict[str, Any]]],
) -> None:
    svc = service_from_dict(seed["Service"][0])
    v4 = copy.deepcopy(next(s for s in seed["EndpointSlice"] if s["addressType"] == "IPv4"))
    v4["endpoints"] = [e for e in v4["endpoints"] if not e["conditions"]["ready"]]
    d = decide(svc, [endpointslice_from_dict(v4)], None, use_legacy=False)
    assert [(str(e.address), e.terminating) for e in d.endpoints[V4]] == [("10.244.3.9", True)]
    assert dict(node_share(d, svc, "node-c")) == {V4: NodeShare(True, "")}
