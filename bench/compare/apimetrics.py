"""Parsing the API server's apiserver_request_total counters (Prometheus text format)."""

from __future__ import annotations

import re
from collections.abc import Mapping

_LINE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Key = tuple[str, str, str]  # verb, resource, subresource


def request_totals(text: str) -> dict[Key, float]:
    """Request counters by (verb, resource, subresource), summed over codes, groups and scopes."""
    out: dict[Key, float] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        labels = dict(_LABEL.findall(m.group("labels")))
        key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
        out[key] = out.get(key, 0.0) + float(m.group("value"))
    return out


def delta(
    before: Mapping[Key, float], after: Mapping[Key, float], resources_only: bool = True
) -> dict[Key, float]:
    """Requests between two scrapes; non-resource paths (/metrics, /healthz: our own scrapes) left out."""
    out: dict[Key, float] = {}
    for key, v in after.items():
        if resources_only and not key[1]:
            continue
        d = v - before.get(key, 0.0)
        if d > 0:
            out[key] = d
    return out


def per_second(d: Mapping[Key, float], seconds: float) -> float:
    return sum(d.values()) / seconds if seconds > 0 else 0.0


def by_verb(d: Mapping[Key, float], seconds: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for (verb, _res, _sub), v in d.items():
        out[verb] = out.get(verb, 0.0) + v / seconds
    return dict(sorted(out.items()))
