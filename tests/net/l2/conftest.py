"""A fresh two-node lab network per test (bridge, node1, node2, client; both families; fixed MACs).

The lab turns DAD off everywhere; node interfaces get it back here, so that the "IPv6 VIP is usable at
once" test proves that kubevip's NODAD does the work, not the lab.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubevip.lab.network import LabNetwork
from tests.fixtures.prereqs import require_root_netns


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabNetwork]:
    require_root_netns()
    net = LabNetwork(f"n{secrets.token_hex(4)}", nodes=2, state_dir=tmp_path / "lab")
    try:
        net.up()
        for node in net.nodes:
            net.run(node.netns, ["sysctl", "-q", "-w", f"net.ipv6.conf.{node.interface}.accept_dad=1"])
        yield net
    finally:
        net.down()
