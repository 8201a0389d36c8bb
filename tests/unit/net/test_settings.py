"""NetSettings.from_env: kube-vip names and defaults, and errors that name the variable."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.envparse import Settings
from kubevip.errors import ConfigError
from kubevip.net.settings import NetSettings, SubnetMasks, parse_subnet


def load(**env: str) -> NetSettings:
    return NetSettings.from_env(Settings(env))


def test_defaults_match_kube_vip() -> None:
    s = load()
    assert s.arp_rate_ms == 3000
    assert (s.routing_table_id, s.routing_protocol, s.routing_table_type) == (198, 248, "unicast")
    assert s.subnet == SubnetMasks(32, 128, auto=False)
    assert not s.arp and not s.routing_table and not s.clean_routing_table and not s.skip_dad


@given(st.integers(min_value=-10_000, max_value=499))
def test_arp_rate_below_500_resets_to_3000(rate: int) -> None:
    assert load(vip_arpRate=str(rate)).arp_rate_ms == 3000


@given(st.integers(min_value=500, max_value=10**7))
def test_arp_rate_kept_from_500(rate: int) -> None:
    assert load(vip_arpRate=str(rate)).arp_rate_ms == rate


def test_flags_are_read_too() -> None:
    s = NetSettings.from_env(Settings({}, {"vip_interface": "eth1", "vip_arp": "true"}))
    assert s.interface == "eth1" and s.arp


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", SubnetMasks()),
        ("auto", SubnetMasks(auto=True)),
        ("24,64", SubnetMasks(24, 64)),
        ("/28", SubnetMasks(28)),
    ],
)
def test_subnet_forms(value: str, expected: SubnetMasks) -> None:
    assert parse_subnet(value) == expected


@pytest.mark.parametrize("value", ["33", "24,129", "a,b", "1,2,3", "-1"])
def test_subnet_errors_name_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="vip_subnet"):
        load(vip_subnet=value)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"vip_routingtableid": "0"}, "vip_routingtableid"),
        ({"vip_routingprotocol": "2"}, "vip_routingprotocol"),
        ({"vip_routingprotocol": "256"}, "vip_routingprotocol"),
        ({"vip_routingtabletype": "bogus"}, "vip_routingtabletype"),
        ({"vip_arp": "maybe"}, "vip_arp"),
        ({"vip_arp": "true", "vip_routingtable": "true"}, "vip_routingtable"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        NetSettings.from_env(Settings(env))


@given(st.integers(min_value=0, max_value=32), st.integers(min_value=0, max_value=128), st.ip_addresses())
def test_fixed_masks_follow_the_family(
    v4: int, v6: int, ip: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> None:
    masks = parse_subnet(f"{v4},{v6}")
    assert masks.prefixlen(ip) == (v4 if ip.version == 4 else v6)


def test_auto_mask_takes_the_matching_subnet_of_the_same_family() -> None:
    nets = [ipaddress.ip_interface("10.0.0.2/24"), ipaddress.ip_interface("fd00:1::2/64")]
    auto = SubnetMasks(auto=True)
    assert auto.prefixlen(ipaddress.ip_address("10.0.0.50"), nets) == 24
    assert auto.prefixlen(ipaddress.ip_address("fd00:1::50"), nets) == 64
    assert auto.prefixlen(ipaddress.ip_address("10.9.0.50"), nets) == 32
    assert auto.prefixlen(ipaddress.ip_address("fd00:9::50"), nets) == 128


@pytest.mark.parametrize(("value", "expected"), [
    ("1", "unicast"), ("2", "local"), ("6", "blackhole"), ("0", "unicast"), ("unicast", "unicast"),
    ("throw", "throw"), ("", "unicast"),
])
def test_routing_table_type_takes_kube_vips_integer_form(value: str, expected: str) -> None:
    assert NetSettings.from_env(Settings({"vip_routingtabletype": value})).routing_table_type == expected


@pytest.mark.parametrize("value", ["3", "10", "-1", "Unicast"])
def test_routing_table_type_errors_name_the_variable(value: str) -> None:
    with pytest.raises(ConfigError) as err:
        NetSettings.from_env(Settings({"vip_routingtabletype": value}))
    assert err.value.name == "vip_routingtabletype" and value in str(err.value)


def test_kernel_lifetime_and_ownership_settings() -> None:
    s = load()
    assert s.kernel_lifetime and s.ownership == "auto" and s.state_dir == "/var/lib/kubevip"
    s = load(vip_kernel_lifetime="false", vip_ownership="statefile", vip_statedir="/run/kv")
    assert not s.kernel_lifetime and s.ownership == "statefile" and s.state_dir == "/run/kv"
    with pytest.raises(ConfigError, match=r"vip_ownership.*proto"):
        load(vip_ownership="proto")
    with pytest.raises(ConfigError, match=r"vip_kernel_lifetime.*sometimes"):
        load(vip_kernel_lifetime="sometimes")
    assert s.kernel_lifetime_ipv6_limit == 1000
    assert load(vip_kernel_lifetime_ipv6_limit="0").kernel_lifetime_ipv6_limit == 0
    for bad in ("-1", "many"):
        with pytest.raises(ConfigError, match=rf"vip_kernel_lifetime_ipv6_limit.*{bad}"):
            load(vip_kernel_lifetime_ipv6_limit=bad)


def test_packet_settings_defaults_and_cidr_lists() -> None:
    from kubevip.net.settings import PacketSettings

    d = PacketSettings.from_env(Settings({}))
    assert not d.service_security and d.pod_cidrs is None and d.service_cidrs is None and not d.clean
    s = PacketSettings.from_env(Settings({
        "enable_service_security": "true", "egress_podcidr": "10.244.0.0/16, fd00:10:244::/56",
        "egress_servicecidr": "10.96.0.0/12", "egress_clean": "true",
    }))
    assert s.service_security and s.clean
    assert s.pod_cidrs == (ipaddress.ip_network("10.244.0.0/16"), ipaddress.ip_network("fd00:10:244::/56"))
    assert s.service_cidrs == (ipaddress.ip_network("10.96.0.0/12"),)
    with pytest.raises(ConfigError, match="egress_podcidr") as e:
        PacketSettings.from_env(Settings({"egress_podcidr": "10.244.0.0/16,nope"}))
    assert "'nope'" in str(e.value)
