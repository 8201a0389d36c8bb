"""The report Lease format (core/report.py): what the agent writes, `kubevip status` reads back."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.core.report import (
    ANNOTATION_TRUNCATED,
    ANNOTATION_VIPS,
    MAX_VIPS,
    AgentReport,
    HeldVip,
    decode,
    encode,
    report_lease_name,
)
from kubevip.errors import InputError
from kubevip.ip import NodeName

addresses = st.one_of(
    st.ip_addresses(v=4), st.ip_addresses(v=6),
)
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
held = st.builds(HeldVip, addresses, text, text, text, text)


@given(st.lists(held, max_size=30, unique_by=lambda v: (v.address, v.interface)), text, text)
def test_encode_decode_round_trip_mixed_families(vips: list[HeldVip], version: str, node: str) -> None:
    report = AgentReport(NodeName(node or "n1"), version, "scalable", "arp", tuple(vips))
    back = decode(encode(report))
    assert back.node == report.node and back.version == version
    assert set(back.vips) == set(vips)
    assert [v.address.version for v in back.vips] == sorted(v.address.version for v in vips)


def test_over_max_vips_lists_the_first_and_counts_the_rest() -> None:
    base = int(ipaddress.ip_address("10.0.0.0"))
    vips = tuple(HeldVip(ipaddress.ip_address(base + i), "eth0", "u", "", "t") for i in range(MAX_VIPS + 7))
    ann = encode(AgentReport(NodeName("n1"), "v", "lease", "arp", vips))
    back = decode(ann)
    assert len(back.vips) == MAX_VIPS and back.truncated == 7
    assert ann[ANNOTATION_TRUNCATED] == "7"


@pytest.mark.parametrize(("value", "words"), [
    ("{", "not JSON"),
    ('{"a": 1}', "expected a list"),
    ('[{"address": "10.0.0.300"}]', "'address' is not an IP address: '10.0.0.300'"),
    ('[{"address": 4}]', "field 'address' must be a string"),
    ('["x"]', "expected an object"),
])
def test_bad_report_names_the_annotation_and_value(value: str, words: str) -> None:
    with pytest.raises(InputError, match=ANNOTATION_VIPS) as err:
        decode({ANNOTATION_VIPS: value})
    assert words in str(err.value)


def test_lease_name_never_collides_with_kube_vip_service_leases() -> None:
    assert report_lease_name("node1") == "kubevip-agent.node1"
    assert "." in report_lease_name("x" * 300) and len(report_lease_name("x" * 300)) <= 253
