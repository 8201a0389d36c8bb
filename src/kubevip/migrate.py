"""`kubevip migrate check`: what swapping kube-vip's image for kubevip's would change, read from manifests.

Input: kube-vip's own manifests (`kube-vip manifest daemonset|pod`), Helm-rendered YAML, a `kind: List`
or several documents. Every container's `env` is matched against kube-vip's settings (core.compat), and
every Service's `kube-vip.io/*` annotations against kube-vip's annotations. A finding "changes behaviour"
when kubevip ignores the entry or does it differently and the value does not leave it off.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import yaml

from kubevip.core import compat
from kubevip.errors import ConfigError, yaml_problem

WORKLOAD_KINDS = ("DaemonSet", "Deployment", "StatefulSet", "Pod")
KUBEVIP_ONLY = "kubevip-only"  # a setting of kubevip's own (docs/configuration.md)
NOT_A_SETTING = "not-a-setting"  # an env var neither implementation reads as a setting (NODE_NAME, ...)
FROM_REFERENCE = "(from {})"  # valueFrom: the value is not in the manifest


@dataclass(frozen=True)
class Finding:
    """One setting of one container, or one annotation of one Service."""

    kind: str  # "setting" or "annotation"
    object: str  # "DaemonSet kube-system/kube-vip-ds container kube-vip", "Service team/web"
    name: str
    value: str
    status: str  # supported, different, ignored, kubevip-only, not-a-setting
    changes_behaviour: bool
    note: str


def documents(texts: Iterable[tuple[str, str]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(source, object) of every object in the YAML/JSON texts, `kind: List` unpacked."""
    for source, text in texts:
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError as exc:
            # what and where only: PyYAML's message quotes the offending line (a Secret's data, say)
            raise ConfigError("-f", source, f"not valid YAML: {yaml_problem(exc)}") from None
        for i, doc in enumerate(docs):
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise ConfigError("-f", f"{source} document {i + 1}", "not a Kubernetes object (a mapping)")
            if doc.get("kind") == "List" or (str(doc.get("kind", "")).endswith("List") and "items" in doc):
                for item in doc.get("items") or []:
                    if isinstance(item, dict):
                        yield source, item
            else:
                yield source, doc


def _pod_spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    if obj.get("kind") == "Pod":
        spec = obj.get("spec") or {}
    else:
        spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return spec if isinstance(spec, Mapping) else {}


def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace") or ""
    return f"{ns}/{meta.get('name', '')}" if ns else str(meta.get("name", ""))


def _env_value(entry: Mapping[str, Any]) -> tuple[str, bool]:
    """(value, known): a `valueFrom` reference is shown by its kind, its value unknown here."""
    if "value" in entry:
        return str(entry.get("value") if entry.get("value") is not None else ""), True
    ref = entry.get("valueFrom") or {}
    kind = next(iter(ref), "valueFrom") if isinstance(ref, Mapping) else "valueFrom"
    return FROM_REFERENCE.format(kind), False


REDACTED = "(redacted)"


def shown_value(name: str, value: str) -> str:
    """The value as the report shows it: passwords never reach the output (bgp_peerpass, and the third
    field of each `bgp_peers` entry, `address:AS:password:...`, IPv6 addresses in brackets)."""
    if name == "bgp_peerpass" and value and not value.startswith("(from "):
        return REDACTED
    if name == "bgp_peers":
        out = []
        for peer in value.split(","):
            host, sep, rest = peer.partition("]") if peer.startswith("[") else ("", "", peer)
            # "v4:AS:pass:..." splits to [v4, AS, pass, ...]; the rest of "[v6]:AS:pass:..." to ["", AS,
            # pass, ...]: the password is the third field either way.
            fields = rest.split(":")
            if len(fields) > 2 and fields[2]:
                fields[2] = REDACTED
            out.append(f"{host}{sep}{':'.join(fields)}")
        return ",".join(out)
    return value


def setting_finding(
    where: str, name: str, value: str, known: bool, kubevip_settings: frozenset[str]
) -> Finding:
    entry = compat.SETTING_BY_NAME.get(name)
    shown = shown_value(name, value)
    if entry is None:
        status = KUBEVIP_ONLY if name in kubevip_settings else NOT_A_SETTING
        return Finding(compat.SETTING, where, name, shown, status, False, "")
    # A value from a Secret or ConfigMap: only a supported setting is known to be safe.
    changes = entry.changes_behaviour(value) if known else entry.status != compat.SUPPORTED
    return Finding(compat.SETTING, where, name, shown, entry.status, changes, entry.note)


def annotation_finding(where: str, key: str, value: str) -> Finding:
    if key in compat.KUBEVIP_ANNOTATIONS:
        return Finding(compat.ANNOTATION, where, key, value, KUBEVIP_ONLY, False, "")
    entry = compat.ANNOTATION_BY_NAME.get(key)
    if entry is None:
        return Finding(compat.ANNOTATION, where, key, value, compat.IGNORED, True, "unknown to kubevip")
    changes = entry.changes_behaviour(value)
    return Finding(compat.ANNOTATION, where, key, value, entry.status, changes, entry.note)


def _on(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes", "on", "t", "y")


def combinations(where: str, env: Mapping[str, str]) -> list[Finding]:
    """Settings that are each supported but not together."""
    if (_on(env.get("cp_enable")) and _on(env.get("bgp_enable")) and _on(env.get("svc_enable"))
            and (env.get("annotation") or "").strip()):
        return [Finding("combination", where, "cp_enable+bgp_enable+svc_enable+annotation", "true", "refused",
                        True, "kubevip refuses to start: the control plane and the Services share one BGP "
                        "speaker with static peers; peers from Node annotations are not followed then "
                        "(docs/controlplane.md)")]
    return []


def check(objects: Iterable[tuple[str, dict[str, Any]]], kubevip_settings: frozenset[str]) -> list[Finding]:
    """Findings for every workload container's env and every Service's kube-vip.io/* annotations."""
    out: list[Finding] = []
    for _source, obj in objects:
        kind = str(obj.get("kind", ""))
        if kind in WORKLOAD_KINDS:
            spec = _pod_spec(obj)
            for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
                if not isinstance(c, Mapping):
                    continue
                where = f"{kind} {_name(obj)} container {c.get('name', '')}"
                env: dict[str, str] = {}
                for e in c.get("env") or []:
                    if isinstance(e, Mapping) and e.get("name"):
                        value, known = _env_value(e)
                        env[str(e["name"])] = value
                        out.append(setting_finding(where, str(e["name"]), value, known, kubevip_settings))
                out.extend(combinations(where, env))
        elif kind == "Service":
            ann = (obj.get("metadata") or {}).get("annotations") or {}
            for key in sorted(ann):
                if str(key).startswith(compat.ANNOTATION_PREFIX):
                    out.append(annotation_finding(f"Service {_name(obj)}", str(key), str(ann[key])))
    return out


def render_text(findings: list[Finding]) -> str:
    if not findings:
        return "no kube-vip settings or annotations found\n"
    lines = []
    for f in findings:
        mark = "CHANGES" if f.changes_behaviour else "ok"
        note = f"  ({f.note})" if f.note and f.status != compat.SUPPORTED else ""
        lines.append(f"{mark:8} {f.status:13} {f.kind:10} {f.name}={f.value}  [{f.object}]{note}")
    changing = sum(f.changes_behaviour for f in findings)
    lines.append(f"{changing} of {len(findings)} would change behaviour after the swap"
                 if changing else f"all {len(findings)} carry over unchanged")
    return "\n".join(lines) + "\n"


def render_json(findings: list[Finding]) -> str:
    body = {
        "changes_behaviour": any(f.changes_behaviour for f in findings),
        "findings": [asdict(f) for f in findings],
    }
    return json.dumps(body, indent=2) + "\n"
