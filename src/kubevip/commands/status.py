"""`kubevip status`: every Service kubevip serves, who holds each of its VIPs since when, and the agents.

It reads the API only (Services, Nodes, Warning Events and the agents' report Leases), never the nodes.
`-o json` is a stable interface: docs/status.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
from typing import Any

from kubevip.core import parse
from kubevip.core.report import REPORT_LABEL, decode
from kubevip.core.status import ReportLease, WarningEvent, build, parse_time, to_text
from kubevip.core.views import ServiceView
from kubevip.errors import InputError

COMPONENT = "kube-vip"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "status",
        help="who holds which VIP of which Service, since when, and which agents are up",
        description=__doc__,
    )
    parser.add_argument("--kubeconfig", default="", help="kubeconfig (default: KUBECONFIG, else in-cluster)")
    parser.add_argument("-n", "--namespace", default=None, help="only the Services of this namespace")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text", help="default text")
    add_lease_namespace(parser)
    parser.set_defaults(func=run)


def add_lease_namespace(parser: argparse.ArgumentParser) -> None:
    """`--lease-namespace`, shared with live `kubevip explain`."""
    parser.add_argument(
        "--lease-namespace", default=None, metavar="NS",
        help="where the agents write their report Leases (their vip_leasenamespace; default: the "
             "vip_leasenamespace environment variable, else kube-system); report Leases elsewhere are "
             "ignored, so nobody who may write Leases in another namespace can forge a holder",
    )


def lease_namespace(arg: str | None) -> str:
    """The report Leases' namespace: the flag, else vip_leasenamespace from the environment, else
    kube-system (the agents' default)."""
    from kubevip.election.timings import DEFAULT_NAMESPACE

    # kube-vip's variables are lower case: the agents' own manifest sets exactly this name.
    return arg or os.environ.get("vip_leasenamespace") or DEFAULT_NAMESPACE  # noqa: SIM112


def report_leases_path(arg: str | None) -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{lease_namespace(arg)}/leases"


def _scope(namespace: str | None) -> str:
    return f"/namespaces/{namespace}" if namespace else ""


def report_lease(obj: dict[str, Any]) -> ReportLease:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    holder = str(spec.get("holderIdentity") or "")
    duration = spec.get("leaseDurationSeconds")
    return ReportLease(
        report=decode(meta.get("annotations") or {}, holder),
        holder=holder,
        renew=parse_time(spec.get("renewTime")),
        duration=duration if isinstance(duration, int) else 0,
    )


def warning_event(obj: dict[str, Any]) -> WarningEvent | None:
    """A Warning Event kubevip wrote about a Service, else None."""
    if obj.get("type") != "Warning":
        return None
    source = obj.get("source") or {}
    if COMPONENT not in (obj.get("reportingComponent"), source.get("component")):
        return None
    involved = obj.get("involvedObject") or {}
    if involved.get("kind") != "Service":
        return None
    return WarningEvent(
        uid=str(involved.get("uid") or ""),
        reason=str(obj.get("reason") or ""),
        message=str(obj.get("message") or ""),
        node=str(obj.get("reportingInstance") or source.get("host") or ""),
        last=str(obj.get("lastTimestamp") or obj.get("eventTime") or ""),
    )


async def gather(kubeconfig: str, namespace: str | None, leases_in: str | None = None) -> dict[str, Any]:
    from kubevip.kube.client import connect
    from kubevip.kube.reads import items

    api = await connect(kubeconfig)
    try:
        scope = _scope(namespace)
        warnings = {"fieldSelector": "type=Warning,involvedObject.kind=Service"}
        svc_objs, lease_objs, node_objs, event_objs = await asyncio.gather(
            items(api, f"/api/v1{scope}/services"),
            items(api, report_leases_path(leases_in), {"labelSelector": REPORT_LABEL}),
            items(api, "/api/v1/nodes"),
            items(api, f"/api/v1{scope}/events", warnings),
        )
    finally:
        await api.close()
    services: list[ServiceView] = []
    for obj in svc_objs:
        try:
            services.append(parse.service_from_dict(obj))
        except InputError as exc:
            print(f"kubevip status: skipped a Service: {exc}", file=sys.stderr)
    reports: list[ReportLease] = []
    for obj in lease_objs:
        try:
            reports.append(report_lease(obj))
        except InputError as exc:
            name = (obj.get("metadata") or {}).get("name")
            print(f"kubevip status: report Lease {name}: {exc}", file=sys.stderr)
    nodes = [str((n.get("metadata") or {}).get("name") or "") for n in node_objs]
    events = [e for e in map(warning_event, event_objs) if e is not None]
    return build(services, reports, [n for n in nodes if n], events, dt.datetime.now(dt.UTC), namespace)


def run(args: argparse.Namespace) -> int:
    doc = asyncio.run(gather(args.kubeconfig, args.namespace, args.lease_namespace))
    if args.output == "json":
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        sys.stdout.write(to_text(doc))
    return 0
