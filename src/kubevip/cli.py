"""kubevip: virtual IPs for the control plane and for Services of type LoadBalancer on bare-metal
Kubernetes, dual-stack (IPv4 and IPv6) throughout; configured like kube-vip.

Run `kubevip COMMAND --help` for a command's options. Documentation: docs/ (configuration.md lists every
setting; status.md and explain.md describe the operator's commands)."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Mapping, Sequence

from kubevip import __version__, startup
from kubevip.errors import ConfigError, KubevipError

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


def command_of(argv: Sequence[str]) -> str | None:
    """The subcommand `argv` asks for (its first word after the global options), or None."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--log-level":
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given `argv`, only the subcommand it names is registered.

    Each command module imports what it runs, and `kubevip manager` would otherwise load the lab, IPAM,
    explain and manifest code on every agent start (18 ms of CPU, issue 21). Without a known
    command in `argv` (help, a typo) every command is registered, so usage lists them all.
    """
    parser = argparse.ArgumentParser(
        prog="kubevip", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"kubevip {__version__}")
    parser.add_argument(
        "--log-level", default=None,
        help="DEBUG, INFO, WARNING or ERROR (default: kube-vip's vip_loglevel if set, else INFO)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    asked = command_of(argv) if argv is not None else None
    wanted = [m for m in COMMANDS if m.rsplit(".", 1)[1] == asked] or list(COMMANDS)
    for name in wanted:
        importlib.import_module(name).register(sub)
    return parser


def log_level(flag: str | None, env: Mapping[str, str]) -> int:
    """The logging threshold: `--log-level` when given, else kube-vip's `vip_loglevel`, a Go slog level
    number (-4 debug, 0 info, 4 warn, 8 error; a record shows when its level is at least this), else
    INFO. kube-vip's manifests and Helm values then set our verbosity unchanged."""
    if flag is not None:
        return getattr(logging, flag.upper(), logging.INFO)
    raw = env.get("vip_loglevel", "").strip()
    if not raw:
        return logging.INFO
    try:
        n = int(raw)
    except ValueError:
        raise ConfigError("vip_loglevel", raw, "expected a whole number, kube-vip's log level "
                          "(-4 debug, 0 info, 4 warn, 8 error)") from None
    if n <= -4:
        return logging.DEBUG
    if n <= 0:
        return logging.INFO
    return logging.WARNING if n <= 4 else logging.ERROR


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # The command's modules, and the ones it names to run on (`imports`, e.g. the agent's runner), load
    # under kubevip.startup: without the collector and without recompiling dataclasses' methods.
    with startup.imports():
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        for name in getattr(args, "imports", ()):
            importlib.import_module(name)
    try:
        level = log_level(args.log_level, os.environ)
    except KubevipError as exc:
        print(f"kubevip: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
