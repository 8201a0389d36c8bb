"""`kubevip explain`: load Kubernetes objects from files, run the pure core, render JSON or text."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from kubevip.core import parse
from kubevip.core.claims import claims_of, dhcp_wants, resolve
from kubevip.core.eligibility import Rules, place
from kubevip.core.families import effective_policy
from kubevip.core.nodes import NodeView, node_from_dict
from kubevip.core.plan import ServiceDecision, decide, node_share
from kubevip.core.views import EndpointSliceView, EndpointView, LegacyEndpointsView, ServiceView
from kubevip.errors import InputError, yaml_problem

ENDPOINTS_AUTO = "auto"
ENDPOINTS_SLICES = "slices"
ENDPOINTS_LEGACY = "legacy"
ENDPOINTS_MODES = (ENDPOINTS_AUTO, ENDPOINTS_SLICES, ENDPOINTS_LEGACY)
KINDS = ("Service", "EndpointSlice", "Endpoints", "Node")


@dataclass(frozen=True)
class Document:
    """One Kubernetes object and where it came from (file, 1-based document, 1-based List item)."""

    file: str
    index: int
    obj: object
    item: int = 0

    @property
    def where(self) -> str:
        place = f"{self.file}: document {self.index}"
        return f"{place} item {self.item}" if self.item else place


@dataclass(frozen=True)
class Inputs:
    """The objects `explain` analyses: exactly one Service, any slices and legacy Endpoints."""

    service: ServiceView
    slices: tuple[EndpointSliceView, ...]
    legacy: tuple[LegacyEndpointsView, ...]
    nodes: tuple[NodeView, ...] = ()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _read(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(f"{path}: cannot read: {_one_line(reason)}") from None


def documents(path: str) -> Iterator[Document]:
    """The objects in one YAML or JSON file: every document, and every item of a `kind: List`."""
    text = _read(path)
    index = 0
    try:
        for index, obj in enumerate(yaml.safe_load_all(text), start=1):  # JSON is a subset of YAML
            if obj is None:
                continue
            if isinstance(obj, Mapping) and obj.get("kind") == "List":
                items = obj.get("items")
                if items is None:
                    items = []
                if not isinstance(items, list):
                    raise InputError(f"{path}: document {index}: items of kind: List must be a list")
                for item, entry in enumerate(items, start=1):
                    yield Document(path, index, entry, item)
            else:
                yield Document(path, index, obj)
    except yaml.YAMLError as exc:  # what and where only: PyYAML's message quotes the offending line
        raise InputError(f"{path}: document {index + 1}: not valid YAML/JSON: {yaml_problem(exc)}") from None


def load(paths: Sequence[str]) -> Inputs:
    """Parse every object of every file; exactly one Service; the same object twice is an input error."""
    services: list[tuple[ServiceView, Document]] = []
    slices: list[EndpointSliceView] = []
    legacy: list[LegacyEndpointsView] = []
    nodes: dict[str, NodeView] = {}
    seen: dict[tuple[str, str, str], Document] = {}
    for path in paths:
        for doc in documents(path):
            if not isinstance(doc.obj, Mapping):
                raise InputError(f"{doc.where}: expected a Kubernetes object, got {type(doc.obj).__name__}")
            kind = doc.obj.get("kind")
            if not isinstance(kind, str) or not kind:
                raise InputError(f"{doc.where}: object has no kind")
            if kind not in KINDS:
                continue  # other kinds are ignored on purpose: whole `kubectl get -o yaml` dumps work
            if kind == "Node":
                try:
                    node = node_from_dict(doc.obj)
                except InputError as exc:
                    raise InputError(f"{doc.where}: {exc}") from None
                if node.name in nodes:
                    raise InputError(f"{doc.where}: Node {node.name} given twice")
                nodes[node.name] = node
                continue
            try:
                view: ServiceView | EndpointSliceView | LegacyEndpointsView
                if kind == "Service":
                    view = parse.service_from_dict(doc.obj)
                elif kind == "EndpointSlice":
                    view = parse.endpointslice_from_dict(doc.obj)
                else:
                    view = parse.endpoints_from_dict(doc.obj)
            except InputError as exc:
                raise InputError(f"{doc.where}: {exc}") from None
            identity = (kind, view.namespace, view.name)
            if identity in seen:
                raise InputError(
                    f"{doc.where}: {kind} {view.namespace}/{view.name} given twice "
                    f"(first in {seen[identity].where})"
                )
            seen[identity] = doc
            if isinstance(view, ServiceView):
                services.append((view, doc))
            elif isinstance(view, EndpointSliceView):
                slices.append(view)
            else:
                legacy.append(view)
    if not services:
        raise InputError(f"{', '.join(paths)}: no Service found (need exactly one kind: Service)")
    if len(services) > 1:
        (first, first_doc), (second, second_doc) = services[0], services[1]
        raise InputError(
            f"{second_doc.where}: a second Service {second.key} (first: {first.key} in {first_doc.where}); "
            "explain analyses exactly one Service per run"
        )
    return Inputs(services[0][0], tuple(slices), tuple(legacy), tuple(nodes[n] for n in sorted(nodes)))


def use_legacy(inputs: Inputs, mode: str) -> bool:
    """`legacy` forces Endpoints, `slices` forces slices; `auto` uses slices unless only Endpoints exist."""
    if mode == ENDPOINTS_LEGACY:
        return True
    if mode == ENDPOINTS_SLICES:
        return False
    svc = inputs.service
    has_slices = any(s.namespace == svc.namespace and s.service_name == svc.name for s in inputs.slices)
    return not has_slices and any(e.namespace == svc.namespace and e.name == svc.name for e in inputs.legacy)


def analyse(inputs: Inputs, endpoints_mode: str = ENDPOINTS_AUTO) -> ServiceDecision:
    """The core's decision for the loaded Service."""
    svc = inputs.service
    legacy = next((e for e in inputs.legacy if e.namespace == svc.namespace and e.name == svc.name), None)
    return decide(svc, inputs.slices, legacy, use_legacy(inputs, endpoints_mode))


def _endpoint(ep: EndpointView) -> dict[str, Any]:
    return {
        "address": str(ep.address),
        "node": ep.node,
        "ready": ep.ready,
        "serving": ep.serving,
        "terminating": ep.terminating,
    }


def placement(
    decision: ServiceDecision, service: ServiceView, node: str, nodes: Sequence[NodeView], rules: Rules,
) -> dict[str, dict[str, Any]]:
    """Per VIP: may `node` hold it, judged against the given Nodes (core/eligibility.py; the Service
    alone: no address shared with another Service). A family asking DHCP is keyed `dhcp:<family>` (its
    address is unknown until leased; docs/dhcp.md)."""
    plans, _ = resolve(claims_of(service, "", decision, interfaces=rules.layer2))
    wants = dhcp_wants(service, "", decision, interfaces=rules.layer2)
    pl = place(plans, {service.key: service}, {n.name: n for n in nodes}, rules, wants)
    known = any(n.name == node for n in nodes)
    judged = [(str(p.address), pl.refusals.get(p.address, {})) for p in pl.plans]
    judged += [(f"dhcp:{w.request.family.value}", pl.dhcp_refusals.get((w.service, w.request.family), {}))
               for w in pl.dhcp]
    out: dict[str, dict[str, Any]] = {}
    for what, refusals in judged:
        refused = refusals.get(node)
        out[what] = {
            "eligible": refused is None and known,
            "reason": str(refused.reason) if refused is not None else "",
            "detail": refused.detail if refused is not None else ("" if known else f"no Node {node} given"),
        }
    return out


def to_json(
    decision: ServiceDecision, service: ServiceView, node: str | None = None,
    nodes: Sequence[NodeView] = (), rules: Rules | None = None,
) -> dict[str, Any]:
    """The stable JSON document of docs/explain.md."""
    out: dict[str, Any] = {
        "service": decision.service,
        "families": [f.value for f in decision.families],
        "vips": [
            {"address": str(v.address), "family": v.family.value, "source": v.source} for v in decision.vips
        ],
        "rejected": [{"address": r.address, "reason": r.reason} for r in decision.rejected],
        "announce": decision.announce,
        "reason": decision.reason,
        "endpoints": {f.value: [_endpoint(ep) for ep in eps] for f, eps in decision.endpoints.items()},
    }
    if decision.dhcp:  # only for a Service asking `0.0.0.0`: every other document stays as it was
        out["dhcp"] = [
            {"family": r.family.value, "mac": r.mac, "interface": r.interface,
             "requested": str(r.requested) if r.requested is not None else None, "hostname": r.hostname}
            for r in decision.dhcp
        ]
    if node is not None:
        shares = node_share(decision, service, node)
        out["node"] = {
            "name": node,
            "families": {f.value: {"announce": s.announce, "reason": s.reason} for f, s in shares.items()},
        }
        if nodes:  # only with Node objects given: the output without them stays as it was
            out["node"]["placement"] = placement(decision, service, node, nodes, rules or Rules())
    return out


def _conditions(ep: EndpointView) -> str:
    flags = [name for name, on in (("ready", ep.ready), ("serving", ep.serving)) if on]
    if ep.terminating:
        flags.append("terminating")
    return ",".join(flags) or "not-ready"


def to_text(
    decision: ServiceDecision, service: ServiceView, node: str | None = None,
    nodes: Sequence[NodeView] = (), rules: Rules | None = None,
) -> str:
    """A short human reading of the same decision."""
    families = ", ".join(f.value for f in decision.families) or "(none)"
    lines = [
        f"Service {decision.service}",
        f"  families:  {families}  (ipFamilyPolicy {effective_policy(service)}, "
        f"externalTrafficPolicy {service.external_traffic_policy})",
        f"  announce:  {'yes' if decision.announce else 'no (' + decision.reason + ')'}",
        "  VIPs:" + ("" if decision.vips else "      (none)"),
    ]
    lines += [f"    {v.family.value:<5} {v.address}  (from {v.source})" for v in decision.vips]
    if decision.rejected:
        lines.append("  rejected:")
        lines += [f"    {r.address!r}: {r.reason}" for r in decision.rejected]
    lines.append(f"  usable endpoints (from {decision.endpoint_source}):")
    for family, eps in decision.endpoints.items():
        if not eps:
            lines.append(f"    {family.value:<5} (none)")
        for ep in eps:
            lines.append(f"    {family.value:<5} {ep.address}  node {ep.node or '-'}  {_conditions(ep)}")
    if node is not None:
        lines.append(f"  node {node}:")
        for family, share in node_share(decision, service, node).items():
            verdict = "announces" if share.announce else "does not announce"
            lines.append(f"    {family.value:<5} {verdict}" + (f" ({share.reason})" if share.reason else ""))
        verdicts = placement(decision, service, node, nodes, rules or Rules()) if nodes else {}
        for addr, verdict_ in verdicts.items():
            may = "may hold" if verdict_["eligible"] else "may not hold"
            why = f" ({verdict_['reason']}: {verdict_['detail']})" if verdict_["reason"] else (
                f" ({verdict_['detail']})" if verdict_["detail"] else "")
            lines.append(f"    {may} {addr}{why}")
    return "\n".join(lines) + "\n"


def live_text(live: Mapping[str, Any]) -> str:
    """The live form's addition to the text: who holds each VIP now (kubevip status' source)."""
    lines = ["  held now (agents' report Leases):"]
    for v in live["vips"]:
        who = ", ".join(v["holders"]) if v["holders"] else "nobody"
        since = f" since {v['since']}" if v["since"] else ""
        lines.append(f"    {v['family']:<5} {v['address']}  {who}{since}")
    if not live["vips"]:
        lines.append("    (no VIPs)")
    return "\n".join(lines) + "\n"
