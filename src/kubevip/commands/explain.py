"""`kubevip explain -f FILE ...`: which families, VIPs and endpoints a Service gets, and why."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kubevip import explain
from kubevip.core import labelselector
from kubevip.core.eligibility import Rules
from kubevip.errors import InputError


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "explain",
        help="explain which families, VIPs and endpoints a Service gets (offline, from files)",
        description=__doc__,
    )
    parser.add_argument(
        "-f", "--filename", dest="files", action="append", required=True, metavar="FILE",
        help="YAML or JSON file (multi-document and kind: List allowed; '-' reads stdin); repeatable",
    )
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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    inputs = explain.load(args.files)
    decision = explain.analyse(inputs, args.endpoints)
    try:
        selector = labelselector.parse(args.vip_node_selector)
    except InputError as exc:
        raise InputError(f"--vip-node-selector {args.vip_node_selector!r}: {exc}") from None
    rules = Rules(args.drain_on_cordon, selector, args.layer2)
    if args.output == "text":
        sys.stdout.write(explain.to_text(decision, inputs.service, args.node, inputs.nodes, rules))
    else:
        doc = explain.to_json(decision, inputs.service, args.node, inputs.nodes, rules)
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    return 0
