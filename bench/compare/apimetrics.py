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


WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "APPLY"})


def label(key: Key) -> str:
    """'PATCH services status', 'POST events': the spelling bench/agent.py's JSON uses."""
    return " ".join(x for x in key if x)


def by_verb_resource(d: Mapping[Key, float], seconds: float) -> dict[str, float]:
    """Requests per second by verb, resource and subresource, the busiest first."""
    rates = {label(k): v / seconds for k, v in d.items()} if seconds > 0 else {}
    return dict(sorted(rates.items(), key=lambda kv: -kv[1]))


def report_writes(d: Mapping[Key, float]) -> dict[str, float]:
    """The writes among requests that are not the election's (Lease writes left out): status, annotations,
    Events, claims of other kinds; by verb, resource and subresource."""
    return {label(k): v for k, v in d.items() if k[0] in WRITE_VERBS and k[1] != "leases"}
