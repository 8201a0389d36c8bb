"""The agent process must not load kubernetes_asyncio: its generated models alone cost ~70 MB RSS."""

from __future__ import annotations

import subprocess
import sys

AGENT_MODULES = (
    "kubevip.commands.manager", "kubevip.runner", "kubevip.controlplane.main",
    "kubevip.commands.ipam", "kubevip.ipam.controller", "kubevip.election.__main__",
)


def test_agent_imports_do_not_load_kubernetes_asyncio() -> None:
    # build_parser() registers every subcommand (the lab's too): the most any command line imports.
    code = (
        "import importlib, sys\nfrom kubevip.cli import build_parser\nbuild_parser()\n"
        f"for m in {AGENT_MODULES!r}: importlib.import_module(m)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes_asyncio'))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]", res.stdout


# What `kubevip manager` must not import before it needs it (issue 21: start -> serving). pyroute2's
# package __init__ imports every netlink family it knows (~160 modules); the agent loads
# `pyroute2.iproute` alone on its first netlink call (kubevip.pyroute2_lazy). The DHCP client
# (pyroute2.dhcp) loads only when a Service asks DHCP.
NOT_AT_START = ("pyroute2", "pyroute2.dhcp", "kubevip.net.dhcp4", "pyroute2.ndb", "pyroute2.ipdb")


def test_agent_start_imports_no_pyroute2_and_no_dhcp_client() -> None:
    code = (
        "import importlib, sys\nfrom kubevip.cli import build_parser\nbuild_parser()\n"
        f"for m in {AGENT_MODULES!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in sys.modules if m in {NOT_AT_START!r}))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]", res.stdout


def test_first_netlink_use_loads_pyroute2_iproute_without_the_package_init() -> None:
    # As the agent's first pass does it: a netlink socket through Netns (a dump of the links), then
    # the DHCP client's import path; pyroute2's __init__ must not have run, and a later
    # `from pyroute2 import IPRoute` (the lab, tests) must still get the real package.
    code = (
        "import sys\nfrom kubevip.net.namespace import OWN\nfrom kubevip import pyroute2_lazy\n"
        "with OWN.iproute() as ipr: n = len(ipr.get_links())\n"
        "pyroute2_lazy.submodule('pyroute2.dhcp.client')\nimport kubevip.net.dhcp4\n"
        "print(n > 0, pyroute2_lazy.package_init_ran(), 'pyroute2.ndb' in sys.modules)\n"
        "from pyroute2 import IPRoute, NDB\n"
        "print(pyroute2_lazy.package_init_ran(), IPRoute is sys.modules['pyroute2.iproute'].IPRoute)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.split("\n")[:2] == ["True False False", "True True"], res.stdout + res.stderr


# What only the other commands need: `kubevip manager` registers its own command alone (kubevip.cli).
# PyYAML loads only to read a kubeconfig file: an agent in a Pod uses its service account.
OTHER_COMMANDS = (
    "kubevip.commands.explain", "kubevip.commands.ipam", "kubevip.commands.lab", "kubevip.commands.manifest",
    "kubevip.commands.status", "kubevip.commands.migrate", "kubevip.ipam.controller", "kubevip.lab",
    "kubevip.manifests", "kubevip.explain", "kubevip.migrate", "yaml",
)


def test_the_manager_command_line_loads_no_other_command() -> None:
    code = (
        "import sys\nfrom kubevip.cli import build_parser\n"
        "build_parser(['manager', '--check']).parse_args(['manager', '--check'])\nimport kubevip.runner\n"
        f"print(sorted(m for m in sys.modules if m in {OTHER_COMMANDS!r}))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]", res.stdout


def test_host_facts_and_default_routes_load_no_pyroute2() -> None:
    """A layer 2 agent reads its default routes and gateways at start (the interface, the address
    policy) and lists stale DHCP macvlans in its first pass: our own netlink dumps, so pyroute2's
    IPRoute (33 ms of CPU to import) never loads."""
    code = (
        "import sys\nfrom kubevip.net.hostfacts import host_facts\n"
        "from kubevip.net.interfaces import default_route_interfaces\n"
        "from kubevip.net.macvlan import macvlans\n"
        "host_facts(); default_route_interfaces(); macvlans('kvd')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pyroute2'))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]", res.stdout + res.stderr
