"""docs/migration.md lists every kube-vip setting, annotation and manifest flag with kubevip's status,
exactly as the code has them (core.compat, commands.manifest)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from kubevip.commands.manifest import KUBE_VIP_DEFAULTS, KUBE_VIP_FLAGS
from kubevip.core import compat

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "migration.md"


def _rows(section: str) -> dict[str, str]:
    text = DOC.read_text()
    start = text.index(section)
    end = text.find("\n## ", start + 1)
    body = text[start:end if end > 0 else None]
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^\| `([^`]+)` \| ([^|]+) \|", body, re.M)}


def test_every_setting_with_its_status() -> None:
    assert _rows("## 4. Settings") == {e.name: e.status for e in compat.SETTINGS}


def test_every_annotation_with_its_status() -> None:
    assert _rows("## 5. Annotations") == {e.name: e.status for e in compat.ANNOTATIONS}


def test_every_kube_vip_manifest_flag() -> None:
    rows = _rows("## 7. `kubevip manifest`")
    assert set(rows) == set(KUBE_VIP_FLAGS) | set(KUBE_VIP_DEFAULTS)
    for flag, (env, _kind) in KUBE_VIP_FLAGS.items():
        assert env in rows[flag], flag


def test_every_helm_value() -> None:
    """Section 11 lists every top-level key of the chart's values (kube-vip's chart's keys and ours)."""
    values = yaml.safe_load((REPO / "charts/kubevip/values.yaml").read_text())
    rows = _rows("## 11. Helm values")
    assert set(rows) == set(values)
    assert all(status in {"same", "different", "kubevip-only"} for status in rows.values()), rows
