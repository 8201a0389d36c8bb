"""`kubevip migrate check -f FILE ...`: what replacing kube-vip by kubevip changes (docs/migration.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kubevip import migrate
from kubevip.config import SETTINGS
from kubevip.errors import ConfigError

# Exit codes: 0 nothing changes, 1 the swap changes behaviour (findings say where), 2 bad input (cli).
CHANGES = 1


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "migrate", help="check kube-vip manifests for what a swap to kubevip changes", description=__doc__,
    )
    sub = parser.add_subparsers(dest="migrate_command", required=True)
    check = sub.add_parser(
        "check",
        help="per setting and annotation: supported, different or ignored; exit 1 if behaviour changes",
    )
    check.add_argument(
        "-f", "--filename", dest="files", action="append", required=True, metavar="FILE",
        help="kube-vip DaemonSet / static Pod / Helm-rendered YAML (multi-document, kind: List; '-' stdin)",
    )
    check.add_argument("-o", "--output", choices=("text", "json"), default="text", help="default text")
    check.set_defaults(func=run)


def _read(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text()
    except OSError as exc:
        raise ConfigError("-f", name, f"cannot read it: {exc.strerror or exc}") from exc


def run(args: argparse.Namespace) -> int:
    texts = [(name, _read(name)) for name in args.files]
    findings = migrate.check(migrate.documents(texts), frozenset(n for n, _ in SETTINGS))
    out = migrate.render_json(findings) if args.output == "json" else migrate.render_text(findings)
    sys.stdout.write(out)
    return CHANGES if any(f.changes_behaviour for f in findings) else 0
