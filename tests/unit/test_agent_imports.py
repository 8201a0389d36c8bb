"""The agent process must not load kubernetes_asyncio: its generated models alone cost ~70 MB RSS."""

from __future__ import annotations

import subprocess
import sys

AGENT_MODULES = (
    "kubevip.commands.manager", "kubevip.runner", "kubevip.controlplane.main",
    "kubevip.commands.ipam", "kubevip.ipam.controller", "kubevip.election.__main__",
)


def test_agent_imports_do_not_load_kubernetes_asyncio() -> None:
    # build_parser: `kubevip manager` registers every subcommand (the lab's too) before it runs.
    code = (
        "import importlib, sys\nfrom kubevip.cli import build_parser\nbuild_parser()\n"
        f"for m in {AGENT_MODULES!r}: importlib.import_module(m)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes_asyncio'))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]", res.stdout
