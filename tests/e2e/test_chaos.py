"""Smoke run of the chaos soak (bench/chaos.py) in the session lab: a few dual-stack Services, a few seeded
faults, and two deliberate incidents that the soak's own instruments must report: a VIP added by hand to
a second node's interface (the address sampler must see two holders) and the holder's responder paused
(the prober must see the VIP unanswered). Without them this test could not tell a blind prober or sampler
from a fleet that never fails. The 30-minute soak itself runs outside CI (docs/reliability.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kubevip.lab.controlplane import ControlPlane
from kubevip.lab.network import LabNetwork

BENCH = str(Path(__file__).resolve().parents[2] / "bench")
if BENCH not in sys.path:
    sys.path.insert(0, BENCH)

from chaos import Config, Soak  # noqa: E402

pytestmark = pytest.mark.e2e

FAMILIES = ("ipv4", "ipv6")


async def test_the_soak_reports_what_it_sees_and_sees_what_was_injected(
    control_plane: ControlPlane, lab_network: LabNetwork, tmp_path: Path
) -> None:
    cfg = Config(
        minutes=0.2,
        services=3,
        seed=3,
        kinds=("kill", "stop", "link", "proxy", "churn"),
        quiet=3.0,
        settle_within=15.0,
        hold=(1.0, 2.0),
        # The e2e suite's timings: lifetimes are guaranteed to end before a peer may take over
        # (docs/election.md), so any two-holder moment but the injected one is a fencing bug.
        timings=(4.0, 3.0, 0.5),
        self_check=True,
    )
    rep = await Soak(control_plane, lab_network, tmp_path, cfg).run()

    for fam in FAMILIES:
        d = rep["families"][fam]
        assert {"any_vip_s", "vip_seconds", "gaps", "longest_s", "unattributed"} <= set(d["unanswered"]), d
        assert {"any_vip_s", "vip_seconds", "incidents"} <= set(d["two_holders"]), d
        assert isinstance(d["status_disagreed"], list), d
    assert rep["api"]["by_verb_per_second"].get("update", 0) > 0, rep["api"]  # renewals went via the proxy
    assert rep["status_checks"]["count"] >= 1, rep["status_checks"]
    assert any(f["kind"] in cfg.kinds for f in rep["faults"]), rep["faults"]

    # The sampler saw the VIP that was put on a second node by hand, for about as long as it was there.
    injected = rep["self_check"]["double"]
    seen = [
        d for d in rep["families"]["ipv6"]["two_holders"]["incidents"]
        if d["vip"] == injected["vip"] and d["fault"] == "inject-double"
    ]
    assert seen and seen[0]["s"] > 0.5 and set(seen[0]["nodes"]) == set(injected["nodes"]), (injected, rep)
    # ... and nothing else was ever on two nodes.
    others = [
        d for fam in FAMILIES for d in rep["families"][fam]["two_holders"]["incidents"] if d not in seen
    ]
    assert not others, others

    # The prober saw the VIP whose holder stopped answering.
    gap = next(f for f in rep["faults"] if f["kind"] == "inject-gap")
    assert gap["gaps"] >= 1 and gap["longest_gap_s"] > 0.5, gap
    assert rep["families"]["ipv4"]["unanswered"]["gaps"] >= 1, rep["families"]["ipv4"]
