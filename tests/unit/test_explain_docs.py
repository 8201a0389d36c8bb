"""docs/explain.md stays true: every reason code is documented, and every documented code exists."""

from __future__ import annotations

import re
from pathlib import Path

from kubevip.core import reasons

DOC = Path(__file__).resolve().parents[2] / "docs" / "explain.md"


def test_every_reason_code_is_documented_and_no_stale_ones() -> None:
    text = DOC.read_text()
    section = text[text.index("## Reason codes"):]
    documented = set(re.findall(r"^\| `([a-z0-9-]+)` \|", section, re.MULTILINE))
    assert documented == {c for c in reasons.ALL if c}


def test_contract_keys_are_documented() -> None:
    text = DOC.read_text()
    for key in ("service", "families", "vips", "rejected", "announce", "reason", "endpoints", "node"):
        assert f"| `{key}` |" in text
