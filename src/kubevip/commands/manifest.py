"""`kubevip manifest daemonset|pod|rbac`: the YAML an operator applies."""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from kubevip.errors import ConfigError
from kubevip.manifests import daemonset, pod, rbac
from kubevip.manifests.agent import DEFAULT_IMAGE, AgentOptions


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "manifest", help="print the DaemonSet, static Pod or RBAC YAML"
    )
    p.add_argument("kind", choices=("daemonset", "pod", "rbac", "ipam-rbac"))
    p.add_argument("--image", default=DEFAULT_IMAGE)
    p.add_argument("--namespace", default=rbac.NAMESPACE)
    p.add_argument("--interface", default="", help="vip_interface (default: the default-route interface)")
    p.add_argument("--services-interface", default="", help="vip_servicesinterface")
    p.add_argument("--no-arp", action="store_true", help="do not set vip_arp=true")
    p.add_argument("--no-leader-election", action="store_true", help="vip_leaderelection=false")
    p.add_argument("--svc-election", action="store_true", help="svc_election=true (one Lease per Service)")
    p.add_argument("--lb-class-only", action="store_true")
    p.add_argument("--lb-class-name", default="")
    p.add_argument("--enable-endpoints", action="store_true", help="legacy Endpoints instead of slices")
    p.add_argument("--prometheus-server", default=":2112")
    p.add_argument("--kubeconfig", default=pod.ADMIN_CONF,
                   help="static pod only: host path of the kubeconfig (super-admin.conf during kubeadm init)")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="extra env var")
    p.add_argument("--lease-namespace", default="",
                   help="rbac: where the agents write Leases (vip_leasenamespace; default --namespace)")
    p.add_argument("--cluster-wide-leases", action="store_true",
                   help="rbac: Lease writes in every namespace (needed for svc_election=true)")
    p.add_argument(
        "--secret-env", action="append", default=[], metavar="NAME=SECRET:KEY",
        help="env var NAME from key KEY of Secret SECRET (secretKeyRef), e.g."
             " bgp_peers=kubevip-bgp:bgp_peers: passwords never in the manifest",
    )
    # pod --controlplane: kubevip.manifests.controlplane (docs/controlplane.md)
    p.add_argument("--controlplane", action="store_true", help="pod only: control-plane VIP (cp_enable)")
    p.add_argument("--address", default="", help="control-plane VIP(s): IP, v4,v6 pair or DNS name")
    p.add_argument("--port", type=int, default=6443, help="control-plane port (default 6443)")
    p.add_argument("--dns-mode", default="", choices=("", "first", "ipv4", "ipv6", "dual"))
    p.add_argument("--services", action="store_true", help="with --controlplane: svc_enable=true as well")
    p.set_defaults(func=run)


def _secret_env(items: list[str]) -> tuple[tuple[str, str, str], ...]:
    out: list[tuple[str, str, str]] = []
    for item in items:
        name, _, ref = item.partition("=")
        secret, _, key = ref.partition(":")
        if not (name and secret and key):
            raise ConfigError(
                "--secret-env", item, "expected NAME=SECRET:KEY, e.g. bgp_peers=kubevip-bgp:bgp_peers"
            )
        out.append((name, secret, key))
    return tuple(out)


def options(args: argparse.Namespace) -> AgentOptions:
    extra = tuple((k, v) for k, _, v in (e.partition("=") for e in args.env if "=" in e))
    return AgentOptions(
        image=args.image,
        namespace=args.namespace,
        interface=args.interface,
        services_interface=args.services_interface,
        arp=not args.no_arp,
        leader_election=not args.no_leader_election,
        svc_election=args.svc_election,
        lb_class_only=args.lb_class_only,
        lb_class_name=args.lb_class_name,
        enable_endpoints=args.enable_endpoints,
        prometheus_server=args.prometheus_server,
        extra_env=extra,
        secret_env=_secret_env(getattr(args, "secret_env", [])),
    )


def render(args: argparse.Namespace) -> str:
    if args.kind == "rbac":
        return rbac.render_yaml(namespace=args.namespace, lease_namespace=args.lease_namespace,
                                cluster_wide_leases=args.cluster_wide_leases)
    if args.kind == "ipam-rbac":
        return yaml.safe_dump_all(rbac.render_ipam(namespace=args.namespace), sort_keys=False)
    opts = options(args)
    if args.controlplane:
        from kubevip.manifests import controlplane

        return controlplane.render_yaml(args, opts)
    obj = daemonset.render(opts) if args.kind == "daemonset" else pod.render(opts, args.kubeconfig)
    return yaml.safe_dump(obj, sort_keys=False)


def run(args: argparse.Namespace) -> int:
    print(render(args), end="")
    return 0
