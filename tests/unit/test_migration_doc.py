"""docs/migration.md lists every kube-vip setting, annotation and manifest flag with kubevip's status,
exactly as the code has them (core.compat, commands.manifest)."""

from __future__ import annotations

import re
from pathlib import Path

from kubevip.commands.manifest import KUBE_VIP_DEFAULTS, KUBE_VIP_FLAGS
from kubevip.core import compat

DOC = Path(__file__).resolve().parents[2] / "docs" / "migration.md"


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
