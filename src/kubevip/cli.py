"""kubevip: virtual IPs for the control plane and for Services of type LoadBalancer on bare-metal
Kubernetes, dual-stack (IPv4 and IPv6) throughout; configured like kube-vip.

Run `kubevip COMMAND --help` for a command's options. Documentation: docs/ (configuration.md lists every
setting; status.md and explain.md describe the operator's commands)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from kubevip import __version__
from kubevip.errors import KubevipError

# Each subcommand module defines register(subparsers), which sets `func` (args -> int) as default.
COMMANDS: tuple[str, ...] = (
    "kubevip.commands.explain",
    "kubevip.commands.ipam",
    "kubevip.commands.lab",
    "kubevip.commands.manager",
    "kubevip.commands.manifest",
    "kubevip.commands.status",
    "kubevip.commands.migrate",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubevip", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"kubevip {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        rc: int = args.func(args)
    except KubevipError as exc:
        print(f"kubevip {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return rc


if __name__ == "__main__":
    sys.exit(main())
