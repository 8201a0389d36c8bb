"""bench/announcer.py: the VIPs it starts (half per family) and one short measurement's figures."""

from __future__ import annotations

from announcer import measure, vips_of


def test_vips_are_half_ipv4_half_ipv6_and_distinct() -> None:
    vips = vips_of(7)
    assert len(set(vips)) == 7
    assert [v.version for v in vips] == [4, 4, 4, 6, 6, 6, 6]


async def test_a_short_run_counts_the_refreshes_and_the_jobs() -> None:
    row = await measure(20, rate_ms=100, window=0.5, ns=None, burst=(0.0,))
    assert row["vips"] == 20
    # 20 VIPs every 100 ms for 0.5 s: about 100 frames a second, in far fewer jobs than frames.
    assert 100 <= row["frames_per_s"] <= 400
    assert row["jobs_per_s"] is not None and row["jobs_per_s"] < row["frames_per_s"] / 4
