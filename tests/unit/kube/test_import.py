"""kubevip.kube imports aiohttp without the system CA bundle (issue 21: start-up CPU and RSS), and leaves
OpenSSL's environment as it found it for every TLS context built later."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# What each of kubevip's long-running processes imports first: the agent (through `kubevip manager`'s
# parser, as cli.main does), the control-plane VIP, the IPAM controller.
ENTRIES = (
    "from kubevip.cli import build_parser; build_parser(['manager']); import kubevip.runner",
    "import kubevip.controlplane.main",
    "from kubevip.cli import build_parser; build_parser(['ipam']); import kubevip.commands.ipam, "
    "kubevip.ipam.controller",
)

PROBE = """
import os, ssl, sys
{entry}
import aiohttp.connector as c
print(*(ctx.cert_store_stats()["x509"] for ctx in (c._SSL_CONTEXT_VERIFIED, c._SSL_CONTEXT_UNVERIFIED)))
print(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
print(ssl.create_default_context().cert_store_stats()["x509"])
"""


def run_probe(script: str, entry: str, env: dict[str, str]) -> list[str]:
    """The lines `script` (with `entry` run first) prints in a fresh interpreter."""
    res = subprocess.run([sys.executable, "-c", script.format(entry=entry)], env=env, capture_output=True,
                         text=True, check=True)
    return res.stdout.split("\n")[:-1]


def probe(entry: str, ca: Path) -> list[str]:
    # The process's own bundle: one certificate, so "loaded" and "not loaded" differ on any machine.
    env = {**os.environ, "SSL_CERT_FILE": str(ca)}
    env.pop("SSL_CERT_DIR", None)
    return run_probe(PROBE, entry, env)


@pytest.mark.parametrize("entry", ENTRIES)
def test_the_default_contexts_of_aiohttp_load_no_ca_and_the_environment_is_restored(
    entry: str, pki: Path
) -> None:
    ca = pki / "cert.pem"
    assert probe(entry, ca) == ["0 0", f"{ca} None", "1"]


def test_without_kubevip_kube_aiohttp_loads_the_bundle(pki: Path) -> None:
    # The control: the probe sees the bundle when aiohttp is imported on its own.
    assert probe("", pki / "cert.pem")[0] == "1 1"


FROZENLIST = """
import os, sys
{entry}
import frozenlist
maps = open("/proc/self/maps").read()
print(frozenlist.FrozenList is frozenlist.PyFrozenList, "libstdc++" in maps, "_frozenlist" in maps)
print(os.environ.get("FROZENLIST_NO_EXTENSIONS"))
"""


def frozenlist_probe(entry: str, value: str | None = None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "FROZENLIST_NO_EXTENSIONS"}
    if value is not None:
        env["FROZENLIST_NO_EXTENSIONS"] = value
    return run_probe(FROZENLIST, entry, env)


@pytest.mark.parametrize("entry", ENTRIES)
def test_frozenlist_comes_without_its_cxx_extension_and_the_environment_is_restored(entry: str) -> None:
    # Its C++ extension maps libstdc++ into every agent (1.1 MB of RSS) for aiosignal's one list.
    assert frozenlist_probe(entry) == ["True False False", "None"]


def test_an_operators_own_frozenlist_setting_is_kept() -> None:
    entry = ENTRIES[0]
    assert frozenlist_probe(entry, "") == ["False True True", ""]  # "": extensions on, as frozenlist reads it
    assert frozenlist_probe(entry, "1") == ["True False False", "1"]


def test_without_kubevip_kube_frozenlist_loads_its_extension() -> None:
    # The control: on its own, aiohttp brings frozenlist's C++ extension and libstdc++ on this machine.
    assert frozenlist_probe("import aiohttp") == ["False True True", "None"]
