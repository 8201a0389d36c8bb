"""brief(): a long list in one log line keeps its first items and says how many more there are."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kubevip.listing import brief


@given(st.lists(st.integers(0, 10**6)), st.integers(1, 20))
def test_brief_keeps_the_first_items_and_counts_the_rest(items: list[int], shown: int) -> None:
    text = brief(items, shown)
    head, _, tail = text.partition(" and ")
    assert head == ", ".join(map(str, items[:shown]))
    if len(items) > shown:
        assert tail == f"{len(items) - shown} more"
    else:
        assert tail == ""
