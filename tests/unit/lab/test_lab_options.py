"""`lab up` over a running lab names what differs and how to change it; `--bgp X` names (or installs) what
the daemon needs instead of ending in a traceback."""

from __future__ import annotations

import pytest

from kubevip.errors import LabError
from kubevip.lab.bgp import ensure_prerequisites
from kubevip.lab.instance import option_differences
from kubevip.lab.routers import PREREQUISITES, missing_prerequisites


def test_same_or_unspecified_options_fit() -> None:
    assert option_differences("a", 3, None, "v1.36.3", 3, None, None) == ""
    assert option_differences("a", 3, "frr", "v1.36.3", 3, None, "1.36.3") == ""  # no --bgp: whatever runs
    assert option_differences("a", 3, "frr", "v1.36.3", 3, "frr", None) == ""


def test_bgp_over_a_lab_without_bgp_says_what_differs_and_how_to_change() -> None:
    msg = option_differences("lab1", 3, None, "v1.36.3", 3, "frr", None)
    assert "no BGP router (agents announce by ARP/NDP) (asked --bgp frr)" in msg
    assert "`kubevip lab down --id lab1`, then `kubevip lab up --id lab1 --nodes 3 --bgp frr`" in msg


def test_every_difference_is_named_at_once() -> None:
    msg = option_differences("x", 3, "bird2", "v1.36.3", 2, "gobgpd", "1.29.15")
    assert "--nodes 3 (asked 2)" in msg and "--bgp bird2 (asked --bgp gobgpd)" in msg
    assert "Kubernetes v1.36.3 (asked --kubernetes 1.29.15)" in msg
    assert "lab up --id x --nodes 2 --bgp gobgpd --kubernetes 1.29.15" in msg


def test_missing_daemon_parts_are_named_with_their_package() -> None:
    nothing = missing_prerequisites(
        "frr", which=lambda n: None, exists=lambda p: False, user=lambda n: False, group=lambda n: False
    )
    assert ("user frr", "frr") in nothing and ("group frrvty", "frr") in nothing
    assert len(nothing) == len(PREREQUISITES["frr"])
    assert missing_prerequisites("bird2", which=lambda n: "/usr/sbin/" + n) == []


def test_ensure_installs_then_rechecks_or_names_what_is_missing() -> None:
    state = {"installed": False}

    def missing(daemon: str) -> list[tuple[str, str]]:
        return [] if state["installed"] else [("user frr", "frr")]

    def install() -> bool:
        state["installed"] = True
        return True

    done = ensure_prerequisites("frr", install, missing)
    assert done == ["installed what --bgp frr needs: user frr (package frr)"]
    state["installed"] = False
    with pytest.raises(LabError) as err:
        ensure_prerequisites("frr", lambda: False, missing)
    assert "--bgp frr needs user frr (package frr)" in str(err.value)
    assert "prereqs.sh" in str(err.value) and "apt-get install frr" in str(err.value)

