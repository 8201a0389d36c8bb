"""Pure parts of lab pods: the --labels flag and the per-pod names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kubevip.errors import ConfigError
from kubevip.lab import podnet


def test_labels_flag_is_parsed_and_bad_entries_name_themselves() -> None:
    assert podnet.parse_labels("app=web, tier=db,") == {"app": "web", "tier": "db"}
    assert podnet.parse_labels("") == {}
    with pytest.raises(ConfigError, match="novalue"):
        podnet.parse_labels("app=web,novalue")


def test_names_fit_the_kernel_and_differ_per_namespace() -> None:
    a = podnet._ids("abcdefghij", "default", "x" * 200)
    b = podnet._ids("abcdefghij", "other", "x" * 200)
    assert a != b
    assert len(a[1]) <= 15 and a[0].startswith("kvl-abcdefghij-pod-")


def test_pod_commands_say_the_lab_is_not_up(tmp_path: Path) -> None:
    env = {**os.environ, "KUBEVIP_CACHE": str(tmp_path)}
    for argv in (["add", "web", "--node", "node1", "--labels", "a=b", "-o", "json"], ["del", "web"]):
        res = subprocess.run([sys.executable, "-m", "kubevip", "lab", "pod", *argv, "--id", "nolab"],
                             capture_output=True, text=True, env=env)
        assert res.returncode != 0
        assert "lab nolab is not up" in res.stderr


def test_a_recorded_pid_is_stopped_only_while_it_is_the_pods_responder() -> None:
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    proc = subprocess.Popen([*sleep, "kubevip.lab.responder", "web"])  # looks like the pod's responder
    other = subprocess.Popen(sleep)
    try:
        assert not podnet._is_responder(other.pid, "web")
        podnet._stop(other.pid, "web")  # not the responder: left alone
        assert other.poll() is None
        assert podnet._is_responder(proc.pid, "web") and not podnet._is_responder(proc.pid, "db")
        podnet._stop(proc.pid, "web")
        assert proc.wait(5) is not None
    finally:
        for p in (proc, other):
            p.kill()
            p.wait()
