"""`kubevip manager` stops at start-up naming a Linux capability its settings need and the process lacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubevip.commands.manager import check_capabilities
from kubevip.config import AgentConfig
from kubevip.errors import CapabilityError


def _status(tmp_path: Path, mask: int) -> Path:
    p = tmp_path / "status"
    p.write_text(f"Name:\tpython3\nCapEff:\t{mask:016x}\n")
    return p


def test_missing_net_raw_in_arp_mode_is_named(tmp_path: Path) -> None:
    cfg = AgentConfig.load({"vip_nodename": "n1", "vip_arp": "true"})
    with pytest.raises(CapabilityError, match="CAP_NET_RAW"):
        check_capabilities(cfg, _status(tmp_path, 1 << 12))
    check_capabilities(cfg, _status(tmp_path, (1 << 12) | (1 << 13)))


def test_bgp_mode_needs_net_admin_only(tmp_path: Path) -> None:
    cfg = AgentConfig.load({"vip_nodename": "n1", "vip_arp": "false", "bgp_enable": "true", "bgp_as": "65001",
                            "bgp_routerid": "192.0.2.2", "bgp_peers": "192.0.2.1:65000::false"})
    check_capabilities(cfg, _status(tmp_path, 1 << 12))
    with pytest.raises(CapabilityError, match="CAP_NET_ADMIN"):
        check_capabilities(cfg, _status(tmp_path, 1 << 13))


def test_unreadable_status_is_not_fatal(tmp_path: Path) -> None:
    cfg = AgentConfig.load({"vip_nodename": "n1"})
    check_capabilities(cfg, tmp_path / "absent")
