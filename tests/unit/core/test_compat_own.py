"""kubevip's own kube-vip.io/* annotations are never reported as unsupported kube-vip annotations."""

from __future__ import annotations

import re
from pathlib import Path

from kubevip.core.compat import ANNOTATION_BY_NAME, KUBEVIP_ANNOTATIONS

SRC = Path(__file__).resolve().parents[3] / "src" / "kubevip"
# Condition types and the load-balancer class share the prefix but are no annotations.
NOT_ANNOTATIONS = {"kube-vip.io/IPv4Announced", "kube-vip.io/IPv6Announced", "kube-vip.io/kube-vip-class"}


def test_every_kube_vip_io_key_the_code_names_is_known_to_the_compat_table() -> None:
    pattern = re.compile(r'"(kube-vip\.io/[A-Za-z0-9_.-]+)"')
    named = {m for p in SRC.rglob("*.py") for m in pattern.findall(p.read_text())}
    assert "kube-vip.io/loadbalancerIPs" in named  # the scan reads the code
    unknown = named - NOT_ANNOTATIONS - set(ANNOTATION_BY_NAME) - KUBEVIP_ANNOTATIONS
    assert not unknown, f"add to core/compat.py (ANNOTATIONS, or KUBEVIP_ANNOTATIONS): {sorted(unknown)}"
