"""Community parsing: canonical, sorted, de-duplicated; anything else is a ValueError."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.core.communities import Community, LargeCommunity, parse_communities, parse_large_communities

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)


@given(st.lists(st.tuples(u16, u16), max_size=6))
def test_communities_round_trip(pairs: list[tuple[int, int]]) -> None:
    text = ",".join(f"{a}:{b}" for a, b in pairs)
    parsed = parse_communities(text)
    assert parsed == tuple(sorted({Community(a, b) for a, b in pairs}))
    assert parse_communities(" ".join(str(c) for c in parsed)) == parsed


@given(st.lists(st.tuples(u32, u32, u32), max_size=6))
def test_large_communities_round_trip(triples: list[tuple[int, int, int]]) -> None:
    parsed = parse_large_communities(", ".join(f"{a}:{b}:{c}" for a, b, c in triples))
    assert parsed == tuple(sorted({LargeCommunity(*t) for t in triples}))


@pytest.mark.parametrize("text", ["65536:1", "1", "a:b", "1:2:3", "-1:2", "no-such-name"])
def test_bad_communities(text: str) -> None:
    with pytest.raises(ValueError):
        parse_communities(text)


@pytest.mark.parametrize("text", ["1:2", "4294967296:1:1", "x:y:z"])
def test_bad_large_communities(text: str) -> None:
    with pytest.raises(ValueError):
        parse_large_communities(text)


def test_well_known_names() -> None:
    assert parse_communities("NO-EXPORT no-advertise") == (Community(65535, 65281), Community(65535, 65282))


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (parse_communities, "1:2:3", "'1:2:3' is not a community (expected e.g. 65000:100 or no-export)"),
        (parse_communities, "a:b", "'a:b' is not a community (expected e.g. 65000:100 or no-export)"),
        (parse_communities, "65536:1", "community 65536:1: each half must be 0..65535"),
        (parse_large_communities, "1:2", "'1:2' is not a large community (expected e.g. 65000:1:2)"),
        (parse_large_communities, "x:y:z", "'x:y:z' is not a large community (expected e.g. 65000:1:2)"),
        (parse_large_communities, "4294967296:1:1",
         "large community 4294967296:1:1: each part must be 0..4294967295"),
    ],
)
def test_a_bad_community_is_named_with_an_example(
    parse: Callable[[str], object], text: str, message: str
) -> None:
    with pytest.raises(ValueError) as err:
        parse(text)
    assert str(err.value) == message


def test_a_leading_or_trailing_separator_drops_no_community() -> None:
    # The annotation is split at commas and blanks; an empty first token must not end the list.
    assert parse_communities(",65000:100, no-export,") == (Community(65000, 100), Community(65535, 65281))
    assert parse_large_communities(", 65000:1:2 ,") == (LargeCommunity(65000, 1, 2),)
