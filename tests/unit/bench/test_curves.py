"""bench/curves.py: kube-vip's converged scale rows from a side-by-side run, the stall counts, and a line
per election mode and timings."""

from __future__ import annotations

import json
from pathlib import Path

from curves import compare_rows, label, rows, stalls


def test_curves_take_kube_vips_converged_scale_rows_from_a_compare_run() -> None:
    doc = {
        "settings": {"vip_leaseduration": 5, "vip_renewdeadline": 3, "vip_retryperiod": 1},
        "scale_details": {"kube-vip": {
            "global-100": {"services": 100, "initial_converged": True, "held_at_end": 200, "converge_s": 0.8,
                           "peak_rss_bytes": {"n1": 2**20 * 45, "n2": 2**20 * 75}, "cpu_percent": {"n1": 7.0},
                           "api_rps": 2.3, "writeback_drain_after_restart_s": 10.4},
            "global-1000": {"services": 1000, "initial_converged": False, "held_at_end": 316},
        }},
    }
    (row,) = compare_rows(doc)
    assert row["services"] == 100 and row["election"] == "kube-vip (global election, 5/3/1 s)"
    assert row["rss_mb_max"] == 75 and row["steady_cpu_pct_max"] == 7.0
    assert row["converge_after_restart_s"] == 0.8
    nodes = {"n1": {"over_100ms": 2.0}, "n2": {"over_100ms": 1.0}, "n3": {}}
    both = {"loop_stalls_over_100ms_until_converged": nodes}
    assert stalls(both) == 3.0
    assert stalls({"loop_stalls_over_100ms_until_converged": {"n1": {}}}) is None
    assert stalls(both, "blocked_over_100ms") is None  # agents before session 33 did not tell them apart
    nodes = {"n1": {"over_100ms": 2.0, "blocked_over_100ms": 1.0},
             "n2": {"over_100ms": 1.0, "blocked_over_100ms": 0.0}}
    assert stalls({"loop_stalls_over_100ms_until_converged": nodes}, "blocked_over_100ms") == 1.0


def test_rows_at_other_timings_get_a_line_of_their_own(tmp_path: Path) -> None:
    row = {"services": 5000, "election": "lease", "converge_after_restart_s": 15.5}
    runs = (("ours.json", "defaults (1.5,1.0,0.25)", []), ("kv.json", "5,3,1", []), ("old.json", None, []),
            ("off.json", "5,3,1", ["vip_kernel_lifetime=false"]))
    for name, timings, env in runs:
        doc = {"election_timings_s": timings, "agent_env": env, "scale": [row]}
        (tmp_path / name).write_text(json.dumps(doc))
    found = rows([tmp_path / n for n, _, _ in runs])
    assert [r["election"] for r in found] == [
        "lease", "lease (5/3/1 s)", "lease", "lease (5/3/1 s), vip_kernel_lifetime=false"]


def test_the_checkout_an_a_b_ran_from_is_no_configuration_of_its_own() -> None:
    doc = {"election_timings_s": "defaults", "agent_env": ["PYTHONPATH=/tmp/wt/src", "vip_arp=true"]}
    assert label({"election": "lease"}, doc) == "lease, vip_arp=true"
    assert label({"election": "lease"}, {"agent_env": ["PYTHONPATH=/x"]}) == "lease"
