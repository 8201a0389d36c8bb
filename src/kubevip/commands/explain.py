"""`kubevip explain`: which families, VIPs and endpoints a Service gets, and why.

Offline from files (`-f FILE ...`), or live from the cluster (`-n NAMESPACE NAME`): the same JSON and
text, the live form adding who holds each VIP now (docs/explain.md)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from typing import TYPE_CHECKING, Any

from kubevip import explain
from kubevip.core import labelselector
from kubevip.core.eligibility import Rules
from kubevip.errors import InputError

if TYPE_CHECKING:
    from kubevip.core.status import Holdings


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "explain",
        help="explain which families, VIPs and endpoints a Service gets (from files, or live)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", nargs="?", default=None, metavar="NAME",
                        help="live: the Service to read from the cluster (instead of -f)")
    parser.add_argument(
        "-f", "--filename", dest="files", action="append", default=None, metavar="FILE",
        help="YAML or JSON file (multi-document and kind: List allowed; '-' reads stdin); repeatable",
    )
    parser.add_argument("-n", "--namespace", default="default",
                        help="live: the Service's namespace (default %(default)s)")
    parser.add_argument("--kubeconfig", default="",
                        help="live: kubeconfig (default: KUBECONFIG, else in-cluster, else ~/.kube/config)")
    parser.add_argument(
        "--node", default=None,
        help="also say whether this node takes part, per family, and whether it may hold each VIP "
             "(judged against the Node objects given with -f)",
    )
    parser.add_argument("--drain-on-cordon", action="store_true", help="as vip_drain_on_cordon=true")
    parser.add_argument("--vip-node-selector", default="", help="as vip_node_selector")
    parser.add_argument("--layer2", action="store_true", help="as vip_arp=true: apply the subnet rule")
    parser.add_argument("-o", "--output", choices=("json", "text"), default="json", help="default json")
    parser.add_argument(
        "--endpoints", choices=explain.ENDPOINTS_MODES, default=explain.ENDPOINTS_AUTO,
        help="auto (default): EndpointSlices when given, else legacy Endpoints; legacy: as enable_endpoints",
    )
    from kubevip.commands.status import add_lease_namespace

    add_lease_namespace(parser)  # live: whose report Leases name the holders
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if bool(args.files) == bool(args.name):
        raise InputError("give either -f FILE (offline) or a Service NAME (live, with -n NAMESPACE)")
    try:
        selector = labelselector.parse(args.vip_node_selector)
    except InputError as exc:
        raise InputError(f"--vip-node-selector {args.vip_node_selector!r}: {exc}") from None
    rules = Rules(args.drain_on_cordon, selector, args.layer2)
    live: dict[str, Any] | None = None
    if args.files:
        inputs = explain.load(args.files)
        decision = explain.analyse(inputs, args.endpoints)
    else:
        from kubevip.core.status import vip_entries

        inputs, holding = asyncio.run(
            read_live(args.kubeconfig, args.namespace, args.name, args.node, args.lease_namespace)
        )
        decision = explain.analyse(inputs, args.endpoints)
        live = {"vips": vip_entries(decision, holding)}
    if args.output == "text":
        text = explain.to_text(decision, inputs.service, args.node, inputs.nodes, rules)
        if live is not None:
            text += explain.live_text(live)
        sys.stdout.write(text)
    else:
        doc = explain.to_json(decision, inputs.service, args.node, inputs.nodes, rules)
        if live is not None:
            doc["live"] = live
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    return 0


async def read_live(
    kubeconfig: str, namespace: str, name: str, node: str | None, leases_in: str | None = None,
) -> tuple[explain.Inputs, Holdings]:
    """The Service, its EndpointSlices and Endpoints, the Nodes and the agents' report Leases (in
    `leases_in`, the agents' lease namespace: commands.status.lease_namespace)."""
    from kubevip.commands.status import report_lease, report_leases_path
    from kubevip.core import parse
    from kubevip.core.report import REPORT_LABEL
    from kubevip.core.status import holdings
    from kubevip.kube.client import connect
    from kubevip.kube.reads import get, items

    api = await connect(kubeconfig)
    try:
        base = f"/api/v1/namespaces/{namespace}"
        svc, slices, legacy, nodes, leases = await asyncio.gather(
            get(api, f"{base}/services/{name}"),
            items(api, f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
                  {"labelSelector": f"kubernetes.io/service-name={name}"}),
            get(api, f"{base}/endpoints/{name}"),
            items(api, "/api/v1/nodes"),
            items(api, report_leases_path(leases_in), {"labelSelector": REPORT_LABEL}),
        )
    finally:
        await api.close()
    if svc is None:
        raise InputError(f"Service {namespace}/{name}: not found")
    node_names = sorted(str((n.get("metadata") or {}).get("name")) for n in nodes)
    if node is not None and node not in node_names:
        known = ", ".join(node_names) or "none"
        raise InputError(f"--node {node!r}: no such Node in the cluster (Nodes: {known})")
    try:
        inputs = explain.Inputs(
            parse.service_from_dict(svc),
            tuple(parse.endpointslice_from_dict(s) for s in slices),
            (parse.endpoints_from_dict(legacy),) if legacy is not None else (),
        )
    except InputError as exc:
        raise InputError(f"Service {namespace}/{name} or its endpoints: {exc}") from None
    reports = []
    for obj in leases:
        try:
            reports.append(report_lease(obj))
        except InputError:
            continue  # a broken report names nobody; `kubevip status` says which
    return inputs, holdings(reports, dt.datetime.now(dt.UTC))
