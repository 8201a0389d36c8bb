"""`lab up --kubernetes X`: which pinned control-plane build a version names, and build.sh's choice."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.errors import LabError
from kubevip.lab import versions

REPO = Path(__file__).resolve().parents[3]
CP = REPO / "hack" / "controlplane"
PINNED = ("1.36.3", "1.29.15")


def test_the_checkout_pins_the_default_first_and_1_29() -> None:
    assert versions.available(CP) == [versions.DEFAULT_KUBERNETES, "1.29.15"]


@pytest.mark.parametrize(("wanted", "pinned"), [
    ("1.29", "1.29.15"), ("1.29.15", "1.29.15"), ("v1.29.15", "1.29.15"),
    ("1.36", "1.36.3"), ("1.36.3", "1.36.3"),
])
def test_minor_or_exact_patch_selects_the_pin(wanted: str, pinned: str) -> None:
    assert versions.choose(wanted, PINNED) == pinned


@pytest.mark.parametrize("wanted", ["1.30", "1.29.3", "1.36.1", "2.0.0"])
def test_unpinned_version_names_the_flag_the_value_and_what_is_available(wanted: str) -> None:
    with pytest.raises(LabError) as exc:
        versions.choose(wanted, PINNED)
    msg = str(exc.value)
    assert msg.startswith(f"--kubernetes {wanted}:")
    assert "available: 1.36.3, 1.29.15" in msg


def test_garbage_is_not_a_version_and_the_source_is_named() -> None:
    with pytest.raises(LabError, match=r"^KUBEVIP_KUBERNETES 'latest': not a Kubernetes version.*1\.29\.15"):
        versions.choose("latest", PINNED, source="KUBEVIP_KUBERNETES")


@given(st.integers(0, 40), st.integers(0, 40), st.one_of(st.none(), st.integers(0, 40)))
def test_choose_returns_a_pin_of_the_same_minor_or_raises(major: int, minor: int, patch: int | None) -> None:
    wanted = f"{major}.{minor}" + ("" if patch is None else f".{patch}")
    try:
        got = versions.choose(wanted, PINNED)
    except LabError:
        same_minor = [p for p in PINNED if p.split(".")[:2] == [str(major), str(minor)]]
        assert all(patch is not None and p.split(".")[2] != str(patch) for p in same_minor)
        return
    assert got in PINNED
    assert got.split(".")[:2] == [str(major), str(minor)]
    assert patch is None or got.endswith(f".{patch}")


def _build(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # PATH without Go: a cache hit must not need it, and an unknown version fails before any build.
    env = {"PATH": "/usr/bin:/bin", "KUBEVIP_CACHE": str(cache), "HOME": str(cache)}
    return subprocess.run([str(CP / "build.sh"), *args], capture_output=True, text=True, env=env, timeout=60)


def _key(module: Path) -> str:
    data = (module / "go.mod").read_bytes() + (module / "go.sum").read_bytes()
    return hashlib.sha256(data).hexdigest()[:16]


@pytest.mark.parametrize(("args", "module"), [((), CP), (("1.36.3",), CP), (("1.29",), CP / "1.29"),
                                              (("v1.29.15",), CP / "1.29")])
def test_build_script_keys_each_version_by_its_own_module(
    tmp_path: Path, args: tuple[str, ...], module: Path
) -> None:
    bin_dir = tmp_path / "controlplane" / _key(module) / "bin"
    bin_dir.mkdir(parents=True)
    for b in ("kube-apiserver", "kube-controller-manager", "kubectl", "etcd"):
        (bin_dir / b).write_text("#!/bin/sh\n")
        (bin_dir / b).chmod(0o755)
    res = _build(tmp_path, *args)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == str(bin_dir)


def test_build_script_refuses_an_unpinned_version(tmp_path: Path) -> None:
    res = _build(tmp_path, "1.30")
    assert res.returncode == 2
    assert "Kubernetes 1.30" in res.stderr and "1.36.3 (default), 1.29.15" in res.stderr
    assert not (tmp_path / "controlplane").exists()


@pytest.mark.parametrize(("git_version", "kept"), [
    ("v1.29.15", False), ("v1.29.0-rc.1", False), ("v1.30.0", True), ("v1.36.3", True), ("v2.0.0", True),
])
def test_ip_mode_is_stored_from_1_30(git_version: str, kept: bool) -> None:
    assert versions.keeps_ip_mode(git_version) is kept
