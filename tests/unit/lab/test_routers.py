"""Router.stop(): every process of a router stopped by PID, without waiting out a child of ours."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
from pathlib import Path

import pytest

from kubevip.lab import routers
from kubevip.lab.routers import Router


def test_stop_reaps_a_child_that_exits_on_sigterm_instead_of_waiting_out_its_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bird runs as our own child: its PID is the Popen's. Once it has exited on SIGTERM it stays a
    zombie, which signal 0 still finds, until it is reaped: stop() polled it with signal 0, waited out its
    whole 5 s deadline and sent a SIGKILL to the zombie, for every router in the suite (41 s of a CI run)
    and every `kubevip lab down`."""
    r = Router("unused-netns", tmp_path, 65000, ipaddress.IPv4Address("192.0.2.1"), [])
    child = subprocess.Popen(["sleep", "60"])
    r._procs.append(child)
    r._pids.append(child.pid)
    sent: list[int] = []
    real_kill = os.kill

    def kill(pid: int, sig: int) -> None:
        if pid == child.pid:
            sent.append(sig)
        real_kill(pid, sig)

    monkeypatch.setattr(routers.os, "kill", kill)
    r.stop()
    assert child.returncode == -signal.SIGTERM
    assert signal.SIGKILL not in sent, sent  # the SIGTERM was enough: nothing waited for the deadline
    assert r.pids == []
