"""BGP runtime dirs: private, named after the agent, and swept once their agent is gone."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from kubevip.bgp.runtime import PREFIX, make_runtime_dir, sweep_stale


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_dirs_of_dead_agents_are_swept_live_ones_and_others_kept(tmp_path: Path) -> None:
    dead = tmp_path / f"{PREFIX}{dead_pid()}-abc"
    live = tmp_path / f"{PREFIX}{os.getpid()}-def"
    legacy = tmp_path / f"{PREFIX}xyz"  # no pid in the name: not ours to judge
    for d in (dead, live, legacy):
        d.mkdir()
        (d / "exabgp.conf").write_text("md5-password secret;\n")
    assert sweep_stale(tmp_path) == [dead]
    assert not dead.exists() and live.exists() and legacy.exists()


def test_new_dir_is_private_and_named_after_this_process(tmp_path: Path) -> None:
    stale = tmp_path / f"{PREFIX}{dead_pid()}-old"
    stale.mkdir()
    d = make_runtime_dir(tmp_path)
    assert d.name.startswith(f"{PREFIX}{os.getpid()}-")
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert not stale.exists()
