"""Which Kubernetes version the lab runs: `kubevip lab up --kubernetes X` picks a pinned wrapper module.

hack/controlplane/go.mod pins the default; hack/controlplane/<major.minor>/go.mod pins the others.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from kubevip.errors import LabError

DEFAULT_KUBERNETES = "1.36.3"
ENV = "KUBEVIP_KUBERNETES"
_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?$")
_PIN = re.compile(r"^\s*k8s\.io/kubernetes v(\d+\.\d+\.\d+)\s*$", re.MULTILINE)


def choose(wanted: str, available: Sequence[str], source: str = "--kubernetes") -> str:
    """The pinned version (one of `available`) that `wanted` (1.29, 1.29.15 or v1.29.15) names.

    LabError names `source`, the value and the available versions when none matches.
    """
    m = _VERSION.match(wanted.strip())
    listed = ", ".join(available) or "none"
    if m is None:
        raise LabError(f"{source} {wanted!r}: not a Kubernetes version; use MAJOR.MINOR or "
                       f"MAJOR.MINOR.PATCH, one of: {listed}")
    major, minor, patch = m.groups()
    for pinned in available:
        p_major, p_minor, p_patch = pinned.split(".")
        if (p_major, p_minor) == (major, minor) and patch in (None, p_patch):
            return pinned
    raise LabError(f"{source} {wanted}: no control-plane build pinned for it; available: {listed} "
                   "(hack/controlplane/<major.minor>/go.mod adds one)")


def pinned_version(go_mod_text: str) -> str | None:
    """The k8s.io/kubernetes version a wrapper go.mod requires (without the v), or None."""
    m = _PIN.search(go_mod_text)
    return m.group(1) if m else None


def available(controlplane_dir: Path) -> list[str]:
    """Pinned versions under hack/controlplane, the default first."""
    mods = [controlplane_dir / "go.mod", *sorted(controlplane_dir.glob("*.*/go.mod"))]
    found = [pinned_version(p.read_text()) for p in mods if p.is_file()]
    return [v for v in found if v is not None]


def keeps_ip_mode(git_version: str) -> bool:
    """Whether a server of this version stores status.loadBalancer.ingress[].ipMode by default.

    LoadBalancerIPMode is alpha (off) in 1.29 and beta (on) from 1.30: a 1.29 server drops the field the
    agent writes, without an error.
    """
    m = _VERSION.match(git_version.split("-")[0].split("+")[0])
    return m is None or (int(m.group(1)), int(m.group(2))) >= (1, 30)
