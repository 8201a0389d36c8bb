"""The announce/withdraw diff and the ExaBGP command text."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from kubevip.bgp.commands import Key, Route, announce, diff, withdraw

peers = st.sampled_from([ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("2001:db8::1")])
prefixes = st.sampled_from(
    [ipaddress.ip_network(p) for p in ("198.51.100.1/32", "198.51.100.2/32", "2001:db8:9::1/128")]
)
routes = st.tuples(
    st.sampled_from([ipaddress.ip_address("192.0.2.10"), ipaddress.ip_address("192.0.2.11")]),
    st.sampled_from(["", "65000:1"]),
    st.sampled_from(["", "1:2:3"]),
)
tables = st.dictionaries(st.tuples(peers, prefixes), routes, max_size=6)


@given(tables, tables)
def test_applying_the_diff_reaches_the_desired_table(have: dict[Key, Route], want: dict[Key, Route]) -> None:
    to_announce, to_withdraw = diff(have, want)
    result = dict(have)
    for key, route in to_announce:
        result[key] = route
    for key in to_withdraw:
        del result[key]
    assert result == want
    assert not set(k for k, _ in to_announce) & set(to_withdraw)


@given(tables)
def test_converged_table_needs_no_commands(table: dict[Key, Route]) -> None:
    assert diff(table, table) == ([], [])


def test_command_text() -> None:
    key = (ipaddress.ip_address("192.0.2.1"), ipaddress.ip_network("2001:db8:9::1/128"))
    route = (ipaddress.ip_address("2001:db8::10"), "65000:1 65000:2", "1:2:3")
    assert announce(key, route) == (
        "neighbor 192.0.2.1 announce route 2001:db8:9::1/128 next-hop 2001:db8::10 origin igp"
        " community [ 65000:1 65000:2 ] large-community [ 1:2:3 ]"
    )
    assert withdraw(key, route) == "neighbor 192.0.2.1 withdraw route 2001:db8:9::1/128 next-hop 2001:db8::10"
    assert announce(key, (route[0], "", "")).endswith("origin igp")
