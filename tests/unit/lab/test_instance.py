"""`lab up` refuses to reuse a running lab of another stack, before it starts or changes anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubevip.errors import ConfigError, LabError
from kubevip.lab.instance import LabInstance, option_differences


def _recorded_network(state_dir: Path, stack: str) -> None:
    state_dir.mkdir(parents=True)
    doc = {"lab_id": "x", "slot": 7, "nodes": 2, "stack": stack}
    (state_dir / "network.json").write_text(json.dumps(doc))


@pytest.mark.parametrize(("running", "wanted"), [("ipv6", "dual"), ("dual", "ipv4"), ("ipv4", "ipv6")])
def test_a_lab_of_another_stack_is_reported_not_reused(tmp_path: Path, running: str, wanted: str) -> None:
    _recorded_network(tmp_path / "state", running)
    with pytest.raises(LabError, match=rf"runs with --stack {running} \(asked --stack {wanted}\)\. .*"
                                       r"`kubevip lab down --id x`"):
        LabInstance("x", tmp_path / "state").up(nodes=2, bin_dir=tmp_path / "no-binaries", stack=wanted)
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["network.json"]


def test_unknown_stack_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="stack"):
        LabInstance("x", tmp_path).up(nodes=1, stack="ipv5")


def test_stack_difference_is_named_with_the_rebuild_command() -> None:
    assert option_differences("a", 3, None, None, 3, None, None, "ipv6", "ipv6") == ""
    msg = option_differences("a", 3, None, None, 2, None, None, "dual", "ipv6")
    assert "--nodes 3 (asked 2)" in msg and "--stack dual (asked --stack ipv6)" in msg
    assert "`kubevip lab up --id a --nodes 2 --stack ipv6`" in msg
    # No --stack is dual: an IPv6-only lab is not "whatever runs".
    no_flag = option_differences("a", 3, None, None, 3, None, None, "ipv6")
    assert "--stack ipv6 (asked --stack dual)" in no_flag
