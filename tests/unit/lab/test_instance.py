"""`lab up` refuses to reuse a running lab of another stack, before it starts or changes anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubevip.errors import ConfigError, LabError
from kubevip.lab.instance import LabInstance


def _recorded_network(state_dir: Path, stack: str) -> None:
    state_dir.mkdir(parents=True)
    doc = {"lab_id": "x", "slot": 7, "nodes": 2, "stack": stack}
    (state_dir / "network.json").write_text(json.dumps(doc))


@pytest.mark.parametrize(("running", "wanted"), [("ipv6", "dual"), ("dual", "ipv4"), ("ipv4", "ipv6")])
def test_a_lab_of_another_stack_is_reported_not_reused(tmp_path: Path, running: str, wanted: str) -> None:
    _recorded_network(tmp_path / "state", running)
    with pytest.raises(LabError, match=f"runs with --stack {running}; run `kubevip lab down` first to "
                                       f"change it to {wanted}"):
        LabInstance("x", tmp_path / "state").up(nodes=2, bin_dir=tmp_path / "no-binaries", stack=wanted)
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["network.json"]


def test_unknown_stack_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="stack"):
        LabInstance("x", tmp_path).up(nodes=1, stack="ipv5")
