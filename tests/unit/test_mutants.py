"""A fixed handful of known-bad changes to safety code (mutants), each of which a fast test must kill, so
the mutation score (docs/testing.md, `hack/mutation`) cannot silently fall where it matters most.

Each mutant is applied to a scratch copy of the package; the named fast tests then run against that
copy in a child pytest and must FAIL. The text a mutant replaces must still exist exactly once: when
the product code changes, update the mutant here rather than dropping it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "kubevip"
SIM = "tests/unit/election/test_simulator.py::test_each_fault_on_the_holder"


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # inside src/kubevip
    old: str
    new: str
    tests: tuple[str, ...]  # pytest arguments selecting the tests that must kill it


MUTANTS = (
    Mutant(
        "scalable elector never fences",
        "election/scalable.py",
        "        units = sorted(self._held)\n",
        "        units: list[str] = []\n",
        (SIM, "-k", "scalable and blackhole"),
    ),
    Mutant(
        "scalable liveness counts its fencing deadline from the next renewal, not the last accepted one",
        "election/liveness.py",
        "        self.live_until = sent + t.renew_deadline\n        self.renewals += 1\n",
        "        self.live_until = sent + t.renew_deadline + t.liveness_period\n        self.renewals += 1\n",
        ("tests/unit/election/test_simulator.py::test_scalable_mode_liveness_period_random_schedules", "-k",
         "goal"),
    ),
    Mutant(
        "lease mode adopts a renewal conflict written by someone else",
        "election/elector.py",
        "        if current is None:\n            return False\n        self._mine = current",
        "        if current is None:\n            return True\n        self._mine = current",
        (SIM, "-k", "lease and foreign"),
    ),
    Mutant(
        "a restarted process trusts a Lease that names its own node",
        "election/elector.py",
        "            mine is not None and rec.holder == self.identity"
        " and rec.resource_version == mine.resource_version",
        "            rec.holder == self.identity",
        (SIM, "-k", "lease and restart and not graceful"),
    ),
    Mutant(
        "lease mode fences a lease duration late",
        "election/elector.py",
        "        self._lead_until = sent + self.timings.renew_deadline\n        self._renewed()\n",
        "        self._lead_until = sent + self.timings.lease_duration\n        self._renewed()\n",
        (SIM, "-k", "lease and blackhole"),
    ),
    Mutant(
        "scalable rule claims a unit that is not stealable",
        "election/assign.py",
        "    if (f.want == f.me or (f.winner_too_slow and f.eligible)) and f.stealable:",
        "    if f.want == f.me or (f.winner_too_slow and f.eligible):",
        ("tests/unit/election/test_assign.py",),
    ),
    Mutant(
        "usable() finds no endpoint",
        "core/endpoints.py",
        "    endpoints = tuple(endpoints)\n    ready =",
        "    endpoints = ()\n    ready =",
        ("tests/unit/core/test_properties.py::test_nothing_is_dropped_silently",),
    ),
    Mutant(
        "IPAM shares into a namespace that forbids sharing",
        "ipam/allocator.py",
        "            if h is None or not self._config.share_allowed(other[0]) or ports & h.ports:",
        "            if h is None or ports & h.ports:",
        ("tests/unit/ipam/test_allocator.py::test_sharing_across_namespaces_needs_both_to_allow",),
    ),
    Mutant(
        "the /livez probe always says healthy",
        "controlplane/health.py",
        '    return status == 200 and body.strip() == b"ok"',
        "    return True",
        ("tests/unit/controlplane/test_health.py::test_livez_probe_says_healthy_only_for_200_ok",),
    ),
    # Found by hack/mutation over election/elector.py (docs/testing.md):
    Mutant(
        "lease mode's read-back after a renewal conflict outlives the fencing deadline",
        "election/elector.py",
        "        limit = self._lead_until - self._clock()\n",
        "        limit = max(1.05, self._lead_until - self._clock())\n",
        ("tests/unit/election/test_elector.py::"
         "test_a_renewal_conflict_whose_read_black_holes_still_fences_at_the_renew_deadline",
         "tests/unit/election/test_elector.py::"
         "test_a_renewal_conflict_just_before_the_deadline_fences_at_the_deadline"),
    ),
    Mutant(
        "lease mode judges a holder's Lease by its own lease duration, not the one the holder wrote",
        "election/elector.py",
        "            expiry = expires_at(self._seen, rec.duration or self.timings.lease_duration)\n",
        "            expiry = expires_at(self._seen, self.timings.lease_duration)\n",
        ("tests/unit/election/test_elector.py::test_a_peer_s_longer_lease_duration_is_waited_out",),
    ),
    # Found by hack/mutation over election/scalable.py (docs/mutation/election-scalable-and-rest.md):
    Mutant(
        "scalable mode steals the claims of a live node whose liveness Lease vanished, at once",
        "election/scalable.py",
        "        if claim.holder is None or claim.holder == self.node:\n            return True\n",
        "        if claim.holder is None or claim.holder != self.node:\n            return True\n",
        ("tests/unit/election/test_scalable.py::"
         "test_a_live_holder_whose_liveness_lease_is_deleted_keeps_its_units_until_it_fenced",),
    ),
    # Found by hack/mutation over core/ (survivors until their killers were written, docs/testing.md):
    Mutant(
        "placement's refusals are dropped when they raise no Warning",
        "core/eligibility.py",
        "    if not pl.refusals and not pl.warnings and not pl.dhcp_refusals:\n        return snap, pl",
        "    if not pl.refusals or not pl.warnings and not pl.dhcp_refusals:\n        return snap, pl",
        ("tests/unit/core/test_eligibility.py::test_placed_snapshot_narrows_plans_even_without_a_warning",),
    ),
    Mutant(
        "placement's DHCP refusals are dropped when they raise no Warning",
        "core/eligibility.py",
        "    if not pl.refusals and not pl.warnings and not pl.dhcp_refusals:\n        return snap, pl",
        "    if not pl.refusals and not pl.warnings:\n        return snap, pl",
        ("tests/unit/core/test_eligibility.py::test_dhcp_want_refused_by_the_service_selector_names_each_node",),
    ),
    Mutant(
        "a /30's network and broadcast addresses pass the address policy",
        "core/policy.py",
        "    if subnet.max_prefixlen - subnet.prefixlen < 2:",
        "    if subnet.max_prefixlen - subnet.prefixlen <= 2:",
        ("tests/unit/core/test_policy.py::test_subnet_edges_at_the_boundaries",),
    ),
    Mutant(
        "IPAM's hold() checks sharing against no address: a clash goes unreported",
        "ipam/allocator.py",
        "            if others and not self._can_share(key[0], ports, a, exclude=key):",
        "            if others and not self._can_share(key[0], ports, None, exclude=key):",
        ("tests/unit/ipam/test_allocator.py::test_a_conflict_found_by_hold_names_the_holder_and_both_sides_see_it",),
    ),
    Mutant(
        "the agent handles Services of another load-balancer class (two implementations announce one VIP)",
        "core/selection.py",
        "    if cls is None or cls == f.name or not f.legacy_handling:",
        "    if cls is None or cls != f.name or not f.legacy_handling:",
        ("tests/unit/core/test_selection.py::test_class_decides_which_services_are_handled",),
    ),
    Mutant(
        "an address reported twice keeps the last report, not the healthiest: slice order picks the node",
        "core/endpoints.py",
        "        current = best.get(ep.address)",
        "        current = None",
        ("tests/unit/core/test_endpoints.py::test_the_healthiest_report_of_an_address_wins_whatever_the_order",),
    ),
    Mutant(
        "a Service without kube-vip.io/egress gets SNAT rules: its pods leave with the VIP as source",
        "core/egress.py",
        "        return EgressSpec(False)\n",
        "        return EgressSpec(True)\n",
        ("tests/unit/core/test_egress.py::test_a_service_without_the_egress_annotation_gets_no_snat_rule",),
    ),
    Mutant(
        "a unit's eligible nodes are the union of its VIPs': its holder may hold a VIP it is refused for",
        "core/rows.py",
        "            out[p.unit] = p.eligible if cur is None else cur & p.eligible\n",
        "            out[p.unit] = p.eligible if cur is None else cur | p.eligible\n",
        ("tests/unit/core/test_rows.py::test_a_unit_is_eligible_only_where_each_of_its_vips_is",),
    ),
    Mutant(
        "scalable garbage collection deletes the claim of a live peer (mutation run 6)",
        "election/scalable.py",
        "            if claim.holder not in (None, self.node) and not self._stealable(claim.unit):\n",
        "            if claim.holder not in (None, self.node) and self._stealable(claim.unit):\n",
        ("tests/unit/election/test_scalable.py", "-k", "never_deletes_a_live_peer"),
    ),
)


def _copy_with(tmp: Path, m: Mutant) -> Path:
    root = tmp / "mutant"
    shutil.copytree(SRC, root / "kubevip", ignore=shutil.ignore_patterns("__pycache__"))
    target = root / "kubevip" / m.path
    text = target.read_text()
    assert text.count(m.old) == 1, f"{m.name}: the code it mutates changed ({m.path}); update the mutant"
    target.write_text(text.replace(m.old, m.new))
    return root


def _child(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=f"{root}{os.pathsep}{REPO}", PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False
    )


@pytest.mark.parametrize("m", MUTANTS, ids=[m.name for m in MUTANTS])
def test_fast_tests_kill_the_mutant(m: Mutant, tmp_path: Path) -> None:
    root = _copy_with(tmp_path, m)
    where = _child(root, "-c", "import kubevip; print(kubevip.__file__)")
    assert where.stdout.startswith(str(root)), f"the child does not import the mutant: {where.stdout}"
    out = _child(root, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *m.tests)
    # 1 = tests failed; 2-5 (interrupted, internal error, usage error, nothing collected) kill nothing.
    assert out.returncode == 1, f"mutant '{m.name}' survived (exit {out.returncode}):\n{out.stdout[-3000:]}"
    assert " failed" in out.stdout
