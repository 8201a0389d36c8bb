"""`kubevip explain -f FILE ...`: which families, VIPs and endpoints a Service gets, and why."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kubevip import explain


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
    parser.add_argument("--node", default=None, help="also say whether this node takes part, per family")
    parser.add_argument("-o", "--output", choices=("json", "text"), default="json", help="default json")
    parser.add_argument(
        "--endpoints", choices=explain.ENDPOINTS_MODES, default=explain.ENDPOINTS_AUTO,
        help="auto (default): EndpointSlices when given, else legacy Endpoints; legacy: as enable_endpoints",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    inputs = explain.load(args.files)
    decision = explain.analyse(inputs, args.endpoints)
    if args.output == "text":
        sys.stdout.write(explain.to_text(decision, inputs.service, args.node))
    else:
        doc = explain.to_json(decision, inputs.service, args.node)
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    return 0
