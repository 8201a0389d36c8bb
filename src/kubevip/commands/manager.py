"""`kubevip manager`: the agent (Services of type LoadBalancer, layer 2), configured like kube-vip."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Any

from kubevip.config import SETTINGS, AgentConfig, load_from_process, unsupported_setting_warnings
from kubevip.core import capabilities
from kubevip.errors import CapabilityError

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "manager",
        help="run the agent: watch Services, elect, hold and announce VIPs, report status",
        description="Every setting is read from the environment variable of the same name first, then "
        "from the flag (docs/configuration.md, 'Agent').",
    )
    for name, default in SETTINGS:
        p.add_argument(f"--{name}", dest=f"setting_{name}", metavar="VALUE", default=None,
                       help=f"default {default!r}" if default else None)
    p.add_argument("--check", action="store_true", help="validate the settings, print them and exit")
    # The agent's modules load with the command line's (kubevip.cli, kubevip.startup), not in run().
    p.set_defaults(func=run, imports=("kubevip.runner",))


def flags_of(args: argparse.Namespace) -> dict[str, str]:
    """The settings given as flags (None means the flag was not given)."""
    out: dict[str, str] = {}
    for name, _ in SETTINGS:
        value = getattr(args, f"setting_{name}", None)
        if value is not None:
            out[name] = str(value)
    return out


def run(args: argparse.Namespace) -> int:
    cfg = load_from_process(flags_of(args))  # ConfigError -> cli prints one line and exits 2
    for line in unsupported_setting_warnings({**flags_of(args), **cfg.raw}):
        log.warning("%s", line)  # a kube-vip setting this agent will not honour (docs/migration.md)
    if args.check:
        print(describe(cfg))
        return 0
    check_capabilities(cfg)
    from kubevip.runner import run_agent  # loaded already by the command line (`imports` above)

    rc: int = asyncio.run(run_agent(cfg))
    return rc


def check_capabilities(cfg: AgentConfig, status: Path = Path("/proc/self/status")) -> None:
    """Stop at start-up, naming the capability, when this process lacks one its settings need (a Pod whose
    securityContext dropped it): otherwise every VIP would fail later, one EPERM at a time."""
    try:
        mask = capabilities.effective_mask(status.read_text())
    except OSError:
        mask = None
    if mask is None:
        log.warning("cannot read the effective capabilities from %s; not checked", status)
        return
    lacking = capabilities.missing(capabilities.needed(cfg.arp), mask)
    if lacking:
        raise CapabilityError(capabilities.message(lacking))


def describe(cfg: AgentConfig) -> str:
    """One line per effective setting, for --check and the start-up log."""
    e = cfg.election
    return "\n".join([
        f"node={cfg.node_name} services={cfg.services} mode={cfg.mode}",
        f"interface={cfg.interface or '(default route)'} services_interface={cfg.services_interface or '-'}",
        f"namespace={cfg.namespace or '(all)'}"
        f" endpoints={'legacy' if cfg.use_legacy_endpoints else 'slices'}",
        f"election={e.enabled} per_service={e.per_service} mode={e.mode} lease={e.timings.lease_duration}s"
        f" renew={e.timings.renew_deadline}s retry={e.timings.retry_period}s",
        f"lb_class only={cfg.lb_class.only} name={cfg.lb_class.name} legacy={cfg.lb_class.legacy_handling}",
        f"prometheus={cfg.prometheus or 'off'} kubeconfig={cfg.kubeconfig or '(in-cluster)'}",
        "address policy: allowed_cidrs="
        + (",".join(map(str, cfg.policy.allowed_cidrs)) or "(any not denied)")
        + f" from_pools={cfg.policy.from_pools}"
        + f" interfaces={','.join(cfg.policy.interfaces) or '(none)'}"
        + f" cross_namespace_sharing={cfg.policy.cross_namespace}",
        *([] if cfg.bgp_settings is None else [
            f"bgp as={cfg.bgp_settings.local_as} peers="
            + ",".join(f"[{p.address}]:{p.asn}" if p.address.version == 6 else f"{p.address}:{p.asn}"
                       for p in cfg.bgp_settings.peers)
            + f" hold={cfg.bgp_settings.hold_time}s vips on {cfg.services_interface or cfg.interface or 'lo'}"
        ]),
    ])
