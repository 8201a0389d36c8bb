"""core/capabilities: what the agent needs, what a CapEff mask lacks, and the message naming it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kubevip.core import capabilities as caps

NET_ADMIN = 1 << 12
NET_RAW = 1 << 13


def test_needs_follow_the_mode() -> None:
    assert [n.capability for n in caps.needed(arp=True)] == ["NET_ADMIN", "NET_RAW"]
    assert [n.capability for n in caps.needed(arp=False)] == ["NET_ADMIN"]


def test_effective_mask_from_proc_status() -> None:
    text = "Name:\tpython3\nCapInh:\t0000000000000000\nCapPrm:\t0000000000003000\nCapEff:\t0000000000003000\n"
    assert caps.effective_mask(text) == NET_ADMIN | NET_RAW
    assert caps.effective_mask("Name:\tx\n") is None
    assert caps.effective_mask("CapEff:\tzz\n") is None


def test_missing_names_the_capability() -> None:
    lacking = caps.missing(caps.needed(arp=True), NET_ADMIN)
    assert [n.capability for n in lacking] == ["NET_RAW"]
    msg = caps.message(lacking)
    assert "CAP_NET_RAW" in msg and "vip_arp=true" in msg and "capabilities.add" in msg
    assert "CAP_NET_ADMIN" not in msg
    assert "capabilities:" in caps.message(caps.missing(caps.needed(arp=True), 0))


@given(st.integers(min_value=0, max_value=(1 << 41) - 1), st.booleans())
def test_missing_is_exactly_the_unset_bits(mask: int, arp: bool) -> None:
    needs = caps.needed(arp)
    lacking = caps.missing(needs, mask)
    for n in needs:
        bit = bool(mask & (1 << caps.CAP_NUMBERS[n.capability]))
        assert (n in lacking) == (not bit)
