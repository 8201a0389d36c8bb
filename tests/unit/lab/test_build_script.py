"""hack/controlplane/build.sh's cache contract: key = go.mod + go.sum, a hit needs no Go and no build."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "hack" / "controlplane" / "build.sh"
BINS = ("kube-apiserver", "kube-controller-manager", "kubectl", "etcd")


def cache_key() -> str:
    data = (REPO / "hack/controlplane/go.mod").read_bytes() + (REPO / "hack/controlplane/go.sum").read_bytes()
    return hashlib.sha256(data).hexdigest()[:16]


def run(cache: Path) -> subprocess.CompletedProcess[str]:
    # PATH without Go: a cache hit must not need it.
    env = {"PATH": "/usr/bin:/bin", "KUBEVIP_CACHE": str(cache), "HOME": str(cache)}
    return subprocess.run([str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)


def test_cache_hit_prints_the_bin_dir_without_go(tmp_path: Path) -> None:
    bin_dir = tmp_path / "controlplane" / cache_key() / "bin"
    bin_dir.mkdir(parents=True)
    for b in BINS:
        (bin_dir / b).write_text("#!/bin/sh\n")
        os.chmod(bin_dir / b, 0o755)
    res = run(tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == str(bin_dir)


def test_miss_without_go_says_what_is_needed(tmp_path: Path) -> None:
    bin_dir = tmp_path / "controlplane" / cache_key() / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "kubectl").write_text("")  # incomplete: not a hit
    res = run(tmp_path)
    assert res.returncode != 0
    assert "Go is required" in res.stderr
