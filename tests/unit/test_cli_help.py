"""`kubevip --help` speaks to users: what kubevip is and where to read on; no developer notes."""

from __future__ import annotations

import pytest

from kubevip import cli


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as done:
        cli.main([*argv, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_top_level_help_is_for_users(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys)
    assert "register(" not in text and "module" not in text
    assert "virtual IPs" in text and "LoadBalancer" in text and "docs/" in text
    for command in ("explain", "ipam", "lab", "manager", "manifest", "status"):
        assert command in text


def test_status_and_live_explain_show_their_contract_flags(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys, "status")
    for flag in ("--kubeconfig", "-n NAMESPACE", "-o {text,json}"):
        assert flag in text
    text = _help(capsys, "explain")
    for flag in ("NAME", "-n NAMESPACE", "--kubeconfig", "--node", "-f FILE"):
        assert flag in text
