"""bench/ratios.py: one table of kubevip / kube-vip ratios over several side-by-side runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ratios import cell, parse_column, ratio, row_label, summaries, table


def fig(fid: str, label: str, ours: float | None, theirs: float | None) -> dict[str, Any]:
    def s(v: float | None) -> dict[str, Any]:
        return {"n": 0} if v is None else {"n": 10, "median": v, "p95": 2 * v, "max": 3 * v}

    return {"id": fid, "label": label, "unit": "s", "summary": {"kubevip": s(ours), "kube-vip": s(theirs)}}


def run(router: str, *figs: dict[str, Any]) -> dict[str, Any]:
    return {"settings": {"bgp": {"router": router}}, "figures": list(figs)}


def test_column_spec_names_both_sides() -> None:
    c = parse_column("each at its defaults=a.json,b.json:c.json")
    assert c.label == "each at its defaults"
    assert c.kubevip == (Path("a.json"), Path("b.json"))
    assert c.kube_vip == (Path("c.json"),)


@pytest.mark.parametrize("spec", ["a.json:b.json", "x=a.json", "x=:b.json", " =a.json:b.json"])
def test_bad_column_spec_names_the_spec(spec: str) -> None:
    with pytest.raises(ValueError, match="--column"):
        parse_column(spec)


@given(st.floats(0.001, 1e4), st.floats(0.001, 1e4))
def test_ratio_is_ours_over_theirs(a: float, b: float) -> None:
    r = ratio(a, b)
    assert r is not None and abs(r * b - a) <= 1e-9 * max(a, 1.0)


def test_zero_against_zero_is_even_and_anything_against_zero_has_no_ratio() -> None:
    assert ratio(0.0, 0.0) == 1.0
    assert ratio(1.0, 0.0) is None
    zero = {"n": 10, "median": 0.0, "p95": 0.0}
    assert cell(zero, zero) == "both 0"
    assert cell({"n": 10, "median": 1.0, "p95": 1.0}, zero) == "- (kube-vip 0)"


def test_a_row_kube_vip_could_not_run_says_so() -> None:
    doc = run("", fig("scale1000", "1000 Services held", 2.0, None))
    doc["figures"][0]["not_available"] = {"kube-vip": "only 316 of 2000 VIPs held"}
    theirs = summaries([doc], "kube-vip")
    assert cell(summaries([doc], "kubevip")["1000 Services held"], theirs["1000 Services held"]) == (
        "kube-vip: not available"
    )


def test_bgp_rows_name_their_router_once() -> None:
    kill = {"id": "bgp-kill-ipv4", "label": "BGP: SIGKILL, IPv4"}
    create = {"id": "bgp-create-ipv4", "label": "BGP: created (frr)"}
    assert row_label(kill, "frr") == "BGP: SIGKILL, IPv4 (frr)"
    assert row_label(create, "frr") == "BGP: created (frr)"
    assert row_label({"id": "create-service-ipv4", "label": "L2"}, "frr") == "L2"


def test_columns_match_rows_by_label_across_runs() -> None:
    both = run("bird2", fig("c4", "create", 0.05, 0.10), fig("bgp-kill-ipv4", "kill", 4.0, 8.0))
    frr = run("frr", fig("bgp-kill-ipv4", "kill", 5.0, 10.0))
    own = run("bird2", fig("c4", "create", 0.02, None))
    cols = [
        ("same timings", summaries([both, frr], "kubevip"), summaries([both, frr], "kube-vip")),
        ("own timings", summaries([own], "kubevip"), summaries([both, frr], "kube-vip")),
    ]
    lines = table(cols).splitlines()
    assert lines[0] == "| figure | same timings | own timings |"
    assert "| create | 0.50 (0.50) | 0.20 (0.20) |" in lines
    assert "| kill (bird2) | 0.50 (0.50) | - |" in lines
    assert "| kill (frr) | 0.50 (0.50) | - |" in lines
    assert len(lines) == 5
