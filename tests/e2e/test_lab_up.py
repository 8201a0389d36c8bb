"""The README's main job: `kubevip lab up` runs an agent in every node namespace and the demo Service
answers at the client on both families; `lab status -o json` says each agent runs; `down` stops them."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from kubevip.lab.agents import alive
from kubevip.lab.instance import LabInstance
from tests.fixtures.cluster import control_plane_bin_dir
from tests.fixtures.prereqs import require_root_netns

pytestmark = pytest.mark.e2e


def test_lab_up_demo_answers_on_both_families(tmp_path: Path) -> None:
    require_root_netns()
    bin_dir = control_plane_bin_dir()
    lab = LabInstance(f"d{secrets.token_hex(3)}", tmp_path / "state")
    try:
        lines = lab.up(nodes=3, bin_dir=bin_dir)
        answered = [line for line in lines if line.startswith("client -> ")]
        assert len(answered) == 2, lines  # lab_up raises if a family does not answer
        doc = lab.status()
        agents = [n["agent"] for n in doc["nodes"]]
        assert all(a["running"] and isinstance(a["pid"], int) for a in agents), agents
        again = lab.up(nodes=3, bin_dir=bin_dir)
        assert sum(line.startswith("agent on") and "already running" in line for line in again) == 3, again
        pids = [a["pid"] for a in agents]
    finally:
        removed = lab.down()
    assert sum(line.startswith("stopped agent") for line in removed) == 3, removed
    assert not any(alive(p) for p in pids)
