"""`kubevip ipam`: allocate LoadBalancer VIPs per family from kube-vip cloud-provider's ConfigMap pools."""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from kubevip.config import PolicySettings
from kubevip.core.selection import ClassFilter
from kubevip.envparse import Settings
from kubevip.ipam.controller import IpamController, IpamSettings
from kubevip.ipam.service import DEFAULT_CLASS


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "ipam",
        help="allocate LoadBalancer VIPs from the kubevip ConfigMap (kube-vip cloud-provider format)",
        description=__doc__,
    )
    parser.add_argument("--kubeconfig", default="", help="kubeconfig (default: KUBECONFIG, else in-cluster)")
    parser.add_argument(
        "--configmap", default=None, help="ConfigMap name (env KUBEVIP_CONFIG_MAP; default kubevip)"
    )
    parser.add_argument(
        "--namespace", default=None, help="ConfigMap namespace (env KUBEVIP_NAMESPACE; default kube-system)"
    )
    parser.add_argument(
        "--lb-class-name", default=None,
        help=f"loadBalancerClass handled besides no class (env lb_class_name; default {DEFAULT_CLASS})",
    )
    parser.add_argument(
        "--lb-class-only", default=None,
        help="true: only Services with that class, not those without one (env lb_class_only; default false)",
    )
    parser.set_defaults(func=run)


def settings_from(args: argparse.Namespace, env: dict[str, str]) -> IpamSettings:
    """Env var first, then flag, then default (kube-vip's order); errors name the variable."""
    flags = {
        k: v for k, v in {
            "KUBEVIP_CONFIG_MAP": args.configmap, "KUBEVIP_NAMESPACE": args.namespace,
            "lb_class_name": args.lb_class_name, "lb_class_only": args.lb_class_only,
        }.items() if v is not None
    }
    s = Settings(env, flags)
    policy = PolicySettings.from_env(s)
    return IpamSettings(
        configmap=s.str("KUBEVIP_CONFIG_MAP", "kubevip") or "kubevip",
        namespace=s.str("KUBEVIP_NAMESPACE", "kube-system") or "kube-system",
        classes=ClassFilter(
            name=s.str("lb_class_name", DEFAULT_CLASS) or DEFAULT_CLASS, only=s.bool("lb_class_only", False),
            legacy_handling=s.bool("lb_class_legacy_handling", True),
        ),
        allowed_cidrs=policy.allowed_cidrs,
        service_cidrs=policy.service_cidrs,
        control_plane=policy.control_plane,
    )


async def amain(args: argparse.Namespace) -> int:
    from kubevip.kube.client import connect

    settings = settings_from(args, dict(os.environ))
    api = await connect(args.kubeconfig)
    try:
        await IpamController(api, settings).run()
    finally:
        await api.close()
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(amain(args))
