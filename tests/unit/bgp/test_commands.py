"""The announce/withdraw diff and the ExaBGP command text."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from kubevip.bgp.commands import Key, Route, announce, batches, diff, withdraw

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
    peer = ipaddress.ip_address("192.0.2.1")
    prefixes = (ipaddress.ip_network("2001:db8:9::1/128"), ipaddress.ip_network("2001:db8:9::2/128"))
    route = (ipaddress.ip_address("2001:db8::10"), "65000:1 65000:2", "1:2:3")
    assert announce((peer, route, prefixes)) == (
        "neighbor 192.0.2.1 announce attributes next-hop 2001:db8::10 origin igp"
        " community [ 65000:1 65000:2 ] large-community [ 1:2:3 ] nlri 2001:db8:9::1/128 2001:db8:9::2/128"
    )
    assert withdraw((peer, route, prefixes[:1])) == (
        "neighbor 192.0.2.1 withdraw attributes next-hop 2001:db8::10 nlri 2001:db8:9::1/128"
    )
    assert announce((peer, (route[0], "", ""), prefixes[:1])).endswith("origin igp nlri 2001:db8:9::1/128")


@given(tables, st.integers(1, 4))
def test_batches_cover_every_item_once_and_share_peer_and_route(table: dict[Key, Route], size: int) -> None:
    items = sorted(table.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1])))
    got = batches(items, size)
    flat = [((peer, p), route) for peer, route, prefixes in got for p in prefixes]
    assert sorted(flat, key=str) == sorted(items, key=str)
    assert all(1 <= len(prefixes) <= size for _, _, prefixes in got)
