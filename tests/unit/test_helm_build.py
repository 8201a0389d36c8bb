"""hack/helm/build.sh's cache contract (like the control plane's): key = go.mod + go.sum, a hit needs no
Go and no build; a miss without Go says so. The real build runs in hack/test (for test_helm_chart)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "hack" / "helm" / "build.sh"


def cache_key() -> str:
    data = (REPO / "hack/helm/go.mod").read_bytes() + (REPO / "hack/helm/go.sum").read_bytes()
    return hashlib.sha256(data).hexdigest()[:16]


def run(cache: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "KUBEVIP_CACHE": str(cache), "HOME": str(cache)}  # no Go on PATH
    return subprocess.run([str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)


def test_cache_hit_prints_the_binary_without_go(tmp_path: Path) -> None:
    helm = tmp_path / "helm" / cache_key() / "bin" / "helm"
    helm.parent.mkdir(parents=True)
    helm.write_text("#!/bin/sh\n")
    os.chmod(helm, 0o755)
    for _ in range(2):  # idempotent
        res = run(tmp_path)
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip().splitlines()[-1] == str(helm)


def test_miss_without_go_says_what_is_needed(tmp_path: Path) -> None:
    res = run(tmp_path)
    assert res.returncode != 0 and "Go is required" in res.stderr


def test_pins_helm_v4() -> None:
    assert "require helm.sh/helm/v4 v4.3.2\n" in (REPO / "hack/helm/go.mod").read_text()
