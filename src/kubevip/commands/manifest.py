"""`kubevip manifest daemonset|pod|rbac`: the YAML an operator applies."""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from kubevip import yamlout
from kubevip.errors import ConfigError
from kubevip.manifests import daemonset, pod, rbac
from kubevip.manifests.agent import DEFAULT_IMAGE, AgentOptions


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "manifest", help="print the DaemonSet, static Pod or RBAC YAML"
    )
    p.add_argument("kind", choices=("daemonset", "pod", "rbac", "ipam-rbac"))
    p.add_argument("--image", default=DEFAULT_IMAGE)
    p.add_argument("--namespace", "-n", default=rbac.NAMESPACE)
    p.add_argument("--interface", default="", help="vip_interface (default: the default-route interface)")
    p.add_argument("--services-interface", "--serviceInterface", default="", help="vip_servicesinterface")
    p.add_argument("--no-arp", action="store_true", help="do not set vip_arp=true")
    p.add_argument("--no-leader-election", action="store_true", help="vip_leaderelection=false")
    p.add_argument("--svc-election", "--servicesElection", action="store_true",
                   help="svc_election=true (one Lease per Service)")
    p.add_argument("--lb-class-only", "--lbClassOnly", action="store_true")
    p.add_argument("--lb-class-name", "--lbClassName", default="")
    p.add_argument("--enable-endpoints", "--enableEndpoints", action="store_true",
                   help="legacy Endpoints instead of slices")
    p.add_argument("--prometheus-server", "--prometheusHTTPServer", default=":2112")
    p.add_argument("--kubeconfig", "--k8sConfigPath", default=pod.ADMIN_CONF,
                   help="static pod only: host path of the kubeconfig (super-admin.conf during kubeadm init)")
    _kube_vip_flags(p)
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
    p.add_argument("--address", "--vip", default="", help="control-plane VIP(s): IP, v4,v6 pair or DNS name")
    p.add_argument("--port", type=int, default=6443, help="control-plane port (default 6443)")
    p.add_argument("--dns-mode", "--dnsMode", default="", choices=("", "first", "ipv4", "ipv6", "dual"))
    p.add_argument("--services", action="store_true", help="with --controlplane: svc_enable=true as well")
    p.set_defaults(func=run)


# kube-vip's `manifest` flags (cmd/kube-vip.go) that become one of its env vars here: flag -> (env, kind).
# "on": a switch written as "true"; "value": the flag's value. Flags kubevip already has under another
# name are aliases of those (above); features kubevip lacks (--enableLoadBalancer, --enableNodeLabeling,
# egress, DHCP, ...) stay unknown, so argparse names them instead of a manifest silently losing them.
KUBE_VIP_FLAGS: dict[str, tuple[str, str]] = {
    "--bgp": ("bgp_enable", "on"),
    "--localAS": ("bgp_as", "value"),
    "--bgpRouterID": ("bgp_routerid", "value"),
    "--bgppeers": ("bgp_peers", "value"),
    "--peerAddress": ("bgp_peeraddress", "value"),
    "--peerAS": ("bgp_peeras", "value"),
    "--peerPass": ("bgp_peerpass", "value"),
    "--multihop": ("bgp_multihop", "on"),
    "--sourceIF": ("bgp_sourceif", "value"),
    "--sourceIP": ("bgp_sourceip", "value"),
    "--bgpHoldTimer": ("bgp_hold_time", "value"),
    "--bgpKeepAliveInterval": ("bgp_keepalive_interval", "value"),
    "--table": ("vip_routingtable", "on"),
    "--tableID": ("vip_routingtableid", "value"),
    "--tableType": ("vip_routingtabletype", "value"),
    "--routingProtocol": ("vip_routingprotocol", "value"),
    "--cleanRoutingTable": ("vip_cleanroutingtable", "on"),
    "--leaseName": ("vip_leasename", "value"),
    "--servicesLeaseName": ("svc_leasename", "value"),
    "--leaseDuration": ("vip_leaseduration", "value"),
    "--leaseRenewDuration": ("vip_renewdeadline", "value"),
    "--leaseRetry": ("vip_retryperiod", "value"),
    "--lbClassNameLegacyHandling": ("lb_class_legacy_handling", "on"),
    "--healthCheckPort": ("health_check_port", "value"),
}
# kube-vip's switches that are kubevip's defaults already (accepted so kube-vip's documented commands run).
KUBE_VIP_DEFAULTS = {
    "--arp": "vip_arp=true is the default (--no-arp turns it off)",
    "--leaderElection": "vip_leaderelection=true is the default (--no-leader-election turns it off)",
    "--inCluster": "the DaemonSet always uses its service account",
}


def _kube_vip_flags(p: argparse.ArgumentParser) -> None:
    for flag, (env, kind) in KUBE_VIP_FLAGS.items():
        dest = f"kv_{env}"
        if kind == "on":
            p.add_argument(flag, dest=dest, action="store_true", help=f"kube-vip's flag: {env}=true")
        else:
            p.add_argument(flag, dest=dest, default=None, metavar="VALUE", help=f"kube-vip's flag: {env}")
    for flag, why in KUBE_VIP_DEFAULTS.items():
        p.add_argument(flag, action="store_true", dest=f"kv_default_{flag.lstrip('-')}",
                       help=f"kube-vip's flag, accepted: {why}")
    p.add_argument("--taint", action="store_true",
                   help="kube-vip's flag: daemonset only on control-plane nodes (node affinity)")


def kube_vip_env(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The env vars kube-vip's flags given on the command line ask for, in flag order."""
    out: list[tuple[str, str]] = []
    for env, kind in KUBE_VIP_FLAGS.values():
        value = getattr(args, f"kv_{env}", None)
        if kind == "on" and value:
            out.append((env, "true"))
        elif kind == "value" and value is not None:
            out.append((env, str(value)))
    return out


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
    kv = dict(kube_vip_env(args))
    # One announcement mode at a time: kube-vip's --bgp / --table replace the default ARP mode.
    arp = not args.no_arp and "bgp_enable" not in kv and "vip_routingtable" not in kv
    return AgentOptions(
        image=args.image,
        namespace=args.namespace,
        interface=args.interface,
        services_interface=args.services_interface,
        arp=arp,
        leader_election=not args.no_leader_election and not _bgp_control_plane_ecmp(args, kv),
        svc_election=args.svc_election,
        lb_class_only=args.lb_class_only,
        lb_class_name=args.lb_class_name,
        enable_endpoints=args.enable_endpoints,
        prometheus_server=args.prometheus_server,
        extra_env=extra,
        secret_env=_secret_env(getattr(args, "secret_env", [])),
    )


def _bgp_control_plane_ecmp(args: argparse.Namespace, kv: dict[str, str]) -> bool:
    """`pod --controlplane --bgp` without --leaderElection: kube-vip's manifest leaves election off, so its
    control-plane VIP is announced from every node (ECMP); keep that. --leaderElection: one holder."""
    return bool(getattr(args, "controlplane", False)) and "bgp_enable" in kv and not getattr(
        args, "kv_default_leaderElection", False)


def _with_env(obj: dict[str, Any], pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Set env vars on the agent container: a name already there takes the new value, others append."""
    spec = obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]
    env: list[dict[str, Any]] = spec["containers"][0]["env"]
    for name, value in pairs:
        for e in env:
            if e["name"] == name:
                e.clear()
                e.update({"name": name, "value": value})
                break
        else:
            env.append({"name": name, "value": value})
    return obj


def _control_plane_affinity(obj: dict[str, Any]) -> None:
    """kube-vip's --taint: the DaemonSet runs on control-plane nodes only."""
    terms = [{"matchExpressions": [{"key": key, "operator": "Exists"}]}
             for key in ("node-role.kubernetes.io/master", "node-role.kubernetes.io/control-plane")]
    obj["spec"]["template"]["spec"]["affinity"] = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}
    }


def render(args: argparse.Namespace) -> str:
    if args.kind == "rbac":
        return rbac.render_yaml(namespace=args.namespace, lease_namespace=args.lease_namespace,
                                cluster_wide_leases=args.cluster_wide_leases)
    if args.kind == "ipam-rbac":
        return yamlout.dump_all(rbac.render_ipam(namespace=args.namespace))
    opts = options(args)
    kv = kube_vip_env(args)
    if args.controlplane:
        from kubevip.manifests import controlplane

        text = controlplane.render_yaml(args, opts)
        return yamlout.dump(_with_env(yaml.safe_load(text), kv)) if kv else text
    obj = daemonset.render(opts) if args.kind == "daemonset" else pod.render(opts, args.kubeconfig)
    if args.taint and args.kind == "daemonset":
        _control_plane_affinity(obj)
    return yamlout.dump(_with_env(obj, kv))


def run(args: argparse.Namespace) -> int:
    print(render(args), end="")
    return 0
