"""Kubernetes JSON -> views: defaults as the API defines them, and errors naming object, field and value."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from kubevip.core.parse import (
    endpoints_from_dict,
    endpointslice_from_dict,
    node_addresses_from_dict,
    service_cidrs_from_dict,
    service_from_dict,
)
from kubevip.core.views import IPFamily, StatusCondition
from kubevip.errors import InputError
from tests.unit.core import builders as b


def test_service_fields() -> None:
    d = b.service(families=["IPv6", "IPv4"], policy="PreferDualStack", cluster_ips=["fd00::1", "10.0.0.1"],
                  lb_ips="192.0.2.1", etp="Local")
    d["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
    svc = service_from_dict(d)
    assert svc.key == "default/web"
    assert svc.ip_families == (IPFamily.IPV6, IPFamily.IPV4)
    assert svc.cluster_ips == (ipaddress.ip_address("fd00::1"), ipaddress.ip_address("10.0.0.1"))
    assert svc.annotation("kube-vip.io/loadbalancerIPs") == "192.0.2.1"
    assert svc.annotation("absent") is None
    assert svc.external_traffic_policy == "Local"
    assert svc.ports[0].port == 80 and svc.ports[0].protocol == "TCP"
    assert svc.status_ingress == ("192.0.2.1",)


def test_views_of_separately_decoded_objects_share_their_repeated_strings() -> None:
    """Each object decoded from its own JSON text (as every watch event is) has its own copies of the
    strings; the views keep one copy of what objects repeat, and a long annotation value stays apart."""
    long_value = "x" * 1000

    def decoded(name: str) -> dict[str, Any]:
        d = b.service(name=name, lb_ips="192.0.2.1")
        d["metadata"]["namespace"] = "tenant-a"
        d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = long_value
        d["status"] = {"conditions": [{
            "type": "kube-vip.io/IPv4", "status": "True", "reason": "Announced", "message": "held by node1",
            "lastTransitionTime": "2026-12-06T10:00:00Z",
        }]}
        return dict(json.loads(json.dumps(d)))

    one, two = service_from_dict(decoded("web")), service_from_dict(decoded("api"))
    assert one.namespace is two.namespace
    assert all(a is c for (a, _), (c, _) in zip(one.annotations, two.annotations, strict=True))
    pairs = zip(one.annotations, two.annotations, strict=True)
    short = [(v, w) for (_, v), (_, w) in pairs if v != long_value]
    assert short and all(v is w for v, w in short)
    assert one.annotation("kubectl.kubernetes.io/last-applied-configuration") is not two.annotation(
        "kubectl.kubernetes.io/last-applied-configuration")
    (c1,), (c2,) = one.status_conditions, two.status_conditions
    fields = ("type", "status", "reason", "message", "last_transition")
    assert all(getattr(c1, f) is getattr(c2, f) for f in fields)
    assert one.ports[0].protocol is two.ports[0].protocol and one.type is two.type
    # an EndpointSlice names its Service with the very string the Service's view keeps
    sl = endpointslice_from_dict(json.loads(json.dumps(b.endpointslice("web-a", "IPv4", []))))
    assert sl.service_name is service_from_dict(decoded("web")).name


def test_service_defaults() -> None:
    svc = service_from_dict({"metadata": {"name": "x"}})
    assert svc.namespace == "default"
    assert svc.type == "ClusterIP"
    assert svc.ip_family_policy is None
    assert svc.external_traffic_policy == "Cluster"
    assert svc.ip_families == () and svc.cluster_ips == ()


def test_headless_cluster_ip_is_no_address() -> None:
    spec = {"clusterIP": "None", "clusterIPs": ["None"]}
    svc = service_from_dict({"metadata": {"name": "x"}, "spec": spec})
    assert svc.cluster_ips == ()


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"metadata": {}}, "metadata.name"),
        ({"spec": {"ipFamilies": ["IPv7"]}}, "spec.ipFamilies[0]='IPv7'"),
        ({"spec": {"ipFamilyPolicy": "Dual"}}, "spec.ipFamilyPolicy='Dual'"),
        ({"spec": {"clusterIPs": ["10.0.0.300"]}}, "spec.clusterIPs[0]='10.0.0.300'"),
        ({"spec": {"clusterIP": "bogus"}}, "spec.clusterIP='bogus'"),
        ({"spec": {"externalTrafficPolicy": "Nearest"}}, "spec.externalTrafficPolicy='Nearest'"),
        ({"spec": {"ports": [{"port": "http"}]}}, "spec.ports[0].port='http'"),
        ({"spec": "x"}, "spec='x'"),
        ({"metadata": {"name": "web", "annotations": {"kube-vip.io/ignore": True}}}, "metadata.annotations"),
    ],
)
def test_service_errors_name_field_and_value(patch: dict[str, Any], needle: str) -> None:
    d: dict[str, Any] = {"metadata": {"name": "web", "namespace": "ns"}, "spec": {}}
    d.update(patch)
    with pytest.raises(InputError) as exc:
        service_from_dict(d)
    assert needle in str(exc.value)
    if "name" in d["metadata"]:
        assert str(exc.value).startswith("Service ")


def test_not_a_mapping() -> None:
    with pytest.raises(InputError, match="expected an object"):
        service_from_dict([])  # type: ignore[arg-type]


def test_slice_condition_defaults_follow_kubernetes() -> None:
    s = endpointslice_from_dict(b.endpointslice("web-a", "IPv4", [
        b.ep("10.0.0.1", ready=None),                                  # unset: ready, serving
        b.ep("10.0.0.2", ready=False),                                 # serving follows ready
        b.ep("10.0.0.3", ready=False, serving=True, terminating=True),
    ]))
    a, c, t = s.endpoints
    assert (a.ready, a.serving, a.terminating) == (True, True, False)
    assert (c.ready, c.serving, c.terminating) == (False, False, False)
    assert (t.ready, t.serving, t.terminating) == (False, True, True)
    assert s.service_name == "web" and s.address_type == "IPv4"


def test_slice_family_comes_from_the_address() -> None:
    s = endpointslice_from_dict(b.endpointslice("web-a", "IPv4", [b.ep("fd00::1")]))
    assert s.endpoints[0].family is IPFamily.IPV6


def test_fqdn_slice_carries_no_endpoints() -> None:
    s = endpointslice_from_dict(b.endpointslice("web-a", "FQDN", [b.ep("db.example.com")]))
    assert s.endpoints == ()


def test_slice_null_endpoints_and_no_node() -> None:
    d = b.endpointslice("web-a", "IPv4", [])
    d["endpoints"] = None
    assert endpointslice_from_dict(d).endpoints == ()
    s = endpointslice_from_dict(b.endpointslice("web-a", "IPv4", [b.ep("10.0.0.1", node=None)]))
    assert s.endpoints[0].node is None


@pytest.mark.parametrize(
    ("d", "needle"),
    [
        (b.endpointslice("web-a", "IPv5", []), "addressType='IPv5'"),
        (b.endpointslice("web-a", "IPv4", [b.ep("10.0.0.x")]), "endpoints[0].addresses[0]='10.0.0.x'"),
        (b.endpointslice("web-a", "IPv4", [{"addresses": []}]), "endpoints[0].addresses"),
        (b.endpointslice("web-a", "IPv4", [b.ep("10.0.0.1", ready="yes")]), "conditions.ready='yes'"),  # type: ignore[arg-type]
    ],
)
def test_slice_errors(d: dict[str, Any], needle: str) -> None:
    with pytest.raises(InputError) as exc:
        endpointslice_from_dict(d)
    assert needle in str(exc.value) and "EndpointSlice default/web-a" in str(exc.value)


def test_legacy_endpoints() -> None:
    e = endpoints_from_dict(b.endpoints([("10.0.0.1", "n1"), ("fd00::1", "n2")], [("10.0.0.2", "n3")]))
    by_addr = {str(x.address): x for x in e.endpoints}
    assert by_addr["10.0.0.1"].ready and by_addr["10.0.0.1"].serving and not by_addr["10.0.0.1"].terminating
    assert by_addr["fd00::1"].family is IPFamily.IPV6
    assert not by_addr["10.0.0.2"].ready and not by_addr["10.0.0.2"].serving
    assert by_addr["10.0.0.2"].node == "n3"


def test_legacy_endpoints_error() -> None:
    with pytest.raises(InputError, match=r"subsets\[0\].addresses\[0\].ip='nope'"):
        endpoints_from_dict(b.endpoints([("nope", "n1")]))


# -- Nodes and ServiceCIDRs (the address policy: a VIP may be neither a node's address nor in a Service CIDR)


def test_node_addresses_are_every_ip_of_status_addresses_of_both_families() -> None:
    name, addrs = node_addresses_from_dict({
        "metadata": {"name": "n1"},
        "status": {"addresses": [
            {"type": "InternalIP", "address": "10.0.0.11"},
            {"type": "InternalIP", "address": " fd00::11 "},  # surrounding blanks are not part of it
            {"type": "ExternalIP", "address": "203.0.113.7"},
            {"type": "Hostname", "address": "n1.example"},  # a name: nothing a VIP could be
            {"type": "InternalIP", "address": 7},  # junk: skipped, the rest still counts
            {"type": "InternalIP"},
            {"type": "ExternalIP", "address": "203.0.113.8"},
        ]},
    })
    assert name == "n1"
    want = ["10.0.0.11", "fd00::11", "203.0.113.7", "203.0.113.8"]
    assert addrs == frozenset(map(ipaddress.ip_address, want))
    assert node_addresses_from_dict({"metadata": {"name": "n2"}}) == ("n2", frozenset())


@pytest.mark.parametrize(
    ("d", "needle"),
    [
        ({"metadata": {}}, "Node default/<unnamed>: metadata.name=None: is required"),
        ({"metadata": {"name": ""}}, "metadata.name='': must not be empty"),
        ({"metadata": "n1"}, "metadata='n1': must be an object"),
        ({"metadata": {"name": "n1"}, "status": []}, "status=[]: must be an object"),
        ({"metadata": {"name": "n1"}, "status": {"addresses": "10.0.0.1"}},
         "status.addresses='10.0.0.1': must be a list"),
        ({"metadata": {"name": "n1"}, "status": {"addresses": ["10.0.0.1"]}},
         "status.addresses[0]='10.0.0.1': must be an object"),
    ],
)
def test_node_errors_name_field_and_value(d: dict[str, Any], needle: str) -> None:
    with pytest.raises(InputError) as exc:
        node_addresses_from_dict(d)
    assert needle in str(exc.value)


def test_service_cidrs_keep_order_and_family_and_drop_host_bits() -> None:
    name, nets = service_cidrs_from_dict({
        "metadata": {"name": "kubernetes"},
        "spec": {"cidrs": ["10.96.0.1/16", "fd00:10:96::/112"]},
    })
    assert name == "kubernetes"
    assert nets == (ipaddress.ip_network("10.96.0.0/16"), ipaddress.ip_network("fd00:10:96::/112"))
    assert service_cidrs_from_dict({"metadata": {"name": "x"}}) == ("x", ())


@pytest.mark.parametrize(
    ("d", "needle"),
    [
        ({"metadata": {"name": "x"}, "spec": {"cidrs": ["10.96.0.0/16", "10.96.0.0/33"]}},
         "ServiceCIDR default/x: spec.cidrs[1]='10.96.0.0/33': is not a CIDR"),
        ({"metadata": {"name": "x"}, "spec": {"cidrs": ["10.96.0.0/16", ""]}},
         "spec.cidrs[1]='': must not be empty"),
        ({"metadata": {"name": "x"}, "spec": {"cidrs": [None]}}, "spec.cidrs[0]=None: is required"),
        ({"metadata": {"name": "x"}, "spec": {"cidrs": "10.96.0.0/16"}},
         "spec.cidrs='10.96.0.0/16': must be a list"),
        ({"metadata": {"name": "x"}, "spec": []}, "spec=[]: must be an object"),
        ({"metadata": {}}, "ServiceCIDR default/<unnamed>: metadata.name=None: is required"),
        ({"metadata": []}, "metadata=[]: must be an object"),
    ],
)
def test_service_cidr_errors_name_field_and_value(d: dict[str, Any], needle: str) -> None:
    with pytest.raises(InputError) as exc:
        service_cidrs_from_dict(d)
    assert needle in str(exc.value)


def test_every_service_field_is_read_as_written() -> None:
    """The fields decisions and writes rely on: identity and version (status writes are conditional on
    it), labels, each port's name and protocol (TCP when unset, as the API defaults it: a port clash is
    per protocol), port bounds, a not yet allocated cluster IP, and kubevip's own status conditions."""
    d = b.service(families=["IPv4", "IPv6"], policy="PreferDualStack", cluster_ips=["", "fd00::1"])
    d["metadata"].update({"uid": "u-1", "resourceVersion": "42", "labels": {"app": "web"}})
    d["spec"]["ports"] = [{"name": "dns", "port": 1, "protocol": "UDP"}, {"port": 65535}]
    d["status"] = {"conditions": [
        {"type": "Ready", "status": "True"},  # not ours: not read, and it hides none of ours
        {"type": "kube-vip.io/IPv4", "status": "True", "reason": "Announced", "message": "m",
         "lastTransitionTime": "2026-01-01T00:00:00Z"},
        "junk",
        {"type": "kube-vip.io/IPv6", "status": None},
    ]}
    svc = service_from_dict(d)
    assert (svc.uid, svc.resource_version, svc.labels) == ("u-1", "42", (("app", "web"),))
    assert svc.cluster_ips == (ipaddress.ip_address("fd00::1"),)
    assert [(p.name, p.protocol, p.port) for p in svc.ports] == [("dns", "UDP", 1), ("", "TCP", 65535)]
    assert svc.status_conditions == (
        StatusCondition("kube-vip.io/IPv4", "True", "Announced", "m", "2026-01-01T00:00:00Z"),
        StatusCondition("kube-vip.io/IPv6", "", "", "", ""),
    )
    for bad in (0, 65536):
        d["spec"]["ports"] = [{"port": bad}]
        with pytest.raises(InputError, match=rf"spec.ports\[0\].port={bad}: must be an integer 1-65535"):
            service_from_dict(d)


def test_an_endpoint_address_that_is_null_is_an_input_error_naming_it() -> None:
    with pytest.raises(InputError, match=r"endpoints\[0\].addresses\[0\]=None: is required"):
        endpointslice_from_dict(b.endpointslice("web-a", "IPv4", [{"addresses": [None]}]))
    with pytest.raises(InputError, match=r"subsets\[0\].addresses\[0\].ip=None: is required"):
        endpoints_from_dict({"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": None}]}]})
    e = endpoints_from_dict(b.endpoints([("10.0.0.1", "n1")]))
    assert e.endpoints[0].terminating is False
