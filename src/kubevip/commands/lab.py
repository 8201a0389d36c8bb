"""`kubevip lab up|status|down`: a local dual-stack cluster (real control plane) and network namespaces."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

# The lab's modules are imported by each subcommand, not here: `kubevip manager` builds this parser too,
# and the lab pulls in kubernetes_asyncio (~70 MB RSS) that the agent must not carry.
from kubevip.lab import DEFAULT_LAB_ID


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "lab", help="local dual-stack lab: real control plane + network namespaces", description=__doc__
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--id", dest="lab_id", default=os.environ.get("KUBEVIP_LAB_ID", DEFAULT_LAB_ID),
        help="lab instance name, 1-10 of a-z0-9 (env KUBEVIP_LAB_ID; default %(default)s)",
    )
    sub = parser.add_subparsers(dest="lab_command", required=True)
    up = sub.add_parser("up", parents=[common], help="start control plane and network (idempotent)")
    up.add_argument("--nodes", type=int, default=3, help="node namespaces (default 3)")
    up.add_argument("--stack", choices=("dual", "ipv4", "ipv6"), default="dual",
                    help="IP families of the control plane, the lab network and the demo Service "
                         "(default %(default)s)")
    up.add_argument("--bgp", choices=("gobgpd", "bird2", "frr"), default=None,
                    help="also a BGP router namespace running this daemon, and a client behind it")
    up.add_argument("--control-plane", type=int, default=0, metavar="N",
                    help="a kube-apiserver + control-plane VIP agent in each of the first N nodes "
                         "(kubevip.lab.cpvip, docs/controlplane.md)")
    up.add_argument("--control-plane-bgp", choices=("ecmp", "single"), default="ecmp",
                    help="with --bgp: the control-plane VIP from every healthy node (ecmp, the default) "
                         "or from the Lease holder only (single, vip_leaderelection=true)")
    up.add_argument("--kubernetes", default=None, metavar="VERSION",
                    help="control-plane version: 1.36.3 (the default) or 1.29.15 (1.29 works too); "
                         "env KUBEVIP_KUBERNETES; built once by hack/controlplane/build.sh")
    up.set_defaults(func=run_up)
    st = sub.add_parser(
        "status", parents=[common], help="where everything is; -o json is a stable interface (docs/lab.md)"
    )
    st.add_argument("-o", "--output", choices=("json", "text"), default="text")
    st.set_defaults(func=run_status)
    down = sub.add_parser("down", parents=[common], help="stop and remove everything this lab created")
    down.set_defaults(func=run_down)
    pod = sub.add_parser("pod", help="pods with real network namespaces on lab nodes (docs/lab.md)")
    pod_sub = pod.add_subparsers(dest="pod_command", required=True)
    padd = pod_sub.add_parser(
        "add", parents=[common],
        help="a pod namespace wired to a node, its Pod object (Ready, both IPs) and a responder on 8080",
    )
    padd.add_argument("name", help="the Pod's name")
    padd.add_argument("--node", required=True, help="lab node the pod runs on (node1, node2, ...)")
    padd.add_argument("--namespace", default="default", help="the Pod's namespace (default %(default)s)")
    padd.add_argument("--labels", default="", help="the Pod's labels, k=v,k2=v2")
    padd.add_argument("-o", "--output", choices=("json", "text"), default="text")
    padd.set_defaults(func=run_pod_add)
    pdel = pod_sub.add_parser("del", parents=[common], help="remove a lab pod and its Pod object")
    pdel.add_argument("name", help="the Pod's name")
    pdel.add_argument("--namespace", default="default", help="the Pod's namespace (default %(default)s)")
    pdel.set_defaults(func=run_pod_del)
    gc = sub.add_parser("gc", help="remove test labs whose test run died without tearing them down")
    gc.set_defaults(func=run_gc)


def run_up(args: argparse.Namespace) -> int:
    from kubevip.lab.instance import LabInstance

    for line in LabInstance(args.lab_id).up(
        args.nodes, bgp=args.bgp, kubernetes=args.kubernetes, stack=args.stack
    ):
        print(line)
    if args.control_plane:
        from kubevip.lab import cpvip

        for line in cpvip.instance_up(args.lab_id, args.control_plane, args.control_plane_bgp):
            print(line)
    return 0


def run_status(args: argparse.Namespace) -> int:
    from kubevip.lab import cpvip
    from kubevip.lab.instance import LabInstance

    doc = LabInstance(args.lab_id).status()
    if (cp_doc := cpvip.instance_status(args.lab_id)) is not None:
        doc["control_plane"] = cp_doc
    if args.output == "json":
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return 0
    print(f"lab {doc['lab_id']}: API {doc['server']} (in lab: {doc['in_lab']['server']}), "
          f"Kubernetes {doc['kubernetes_version']}")
    print(f"  kubeconfig {doc['kubeconfig']}")
    print(f"  kubectl    {doc['kubectl']}")
    print(f"  stack      {doc['stack']}")
    print(f"  subnets    {_pair(doc['subnets'])}")
    print(f"  vip pool   {_pair(doc['vip_pool'])}")
    if "demo" in doc:
        d = doc["demo"]
        print(f"  demo       {d['namespace']}/{d['name']} {_pair(d)} port {d['port']}")
    if "ipam_metrics" in doc:
        print(f"  ipam       pool {_pair(doc['ipam_pool'])}, {doc['ipam_metrics']}")
    for n in doc["nodes"]:
        print(f"  {n['name']:8} netns {n['netns']:20} {n['ipv4'] or '-':15} {n['ipv6'] or '-'} {n['mac']}")
    c = doc["client"]
    print(f"  {'client':8} netns {c['netns']:20} {c['ipv4'] or '-':15} {c['ipv6'] or '-'}")
    for p in doc.get("pods", []):
        print(f"  pod {p['namespace']}/{p['name']} on {p['node']}: netns {p['netns']} "
              f"{p['ipv4'] or '-'} {p['ipv6'] or '-'}")
    if "control_plane" in doc:
        v = doc["control_plane"]
        shown = " ".join(a for a in (v["vip"]["ipv4"], v["vip"]["ipv6"]) if a)
        print(f"  control-plane VIP {shown}: {v['kubeconfig_ipv4'] or v['kubeconfig_ipv6']}")
    return 0


def _pair(families: dict[str, Any]) -> str:
    """`ipv4 ipv6` of a status field, leaving out a family the lab's stack lacks (null)."""
    return " ".join(v for v in (families["ipv4"], families["ipv6"]) if v)


def run_pod_add(args: argparse.Namespace) -> int:
    from kubevip.lab import podnet
    from kubevip.lab.instance import LabInstance

    cp, net = LabInstance(args.lab_id).running()
    pod = podnet.add(cp, net, args.name, args.node, args.namespace, podnet.parse_labels(args.labels))
    if args.output == "json":
        sys.stdout.write(json.dumps(pod.to_json(), indent=2) + "\n")
    else:
        print(f"pod {pod.namespace}/{pod.name} on {pod.node}: netns {pod.netns} {pod.ipv4} {pod.ipv6}, "
              f"responder on TCP and UDP {podnet.RESPONDER_PORT}")
    return 0


def run_pod_del(args: argparse.Namespace) -> int:
    from kubevip.lab import podnet
    from kubevip.lab.instance import LabInstance

    cp, net = LabInstance(args.lab_id).running()
    pod = podnet.delete(cp, net, args.name, args.namespace)
    print(f"removed pod {pod.namespace}/{pod.name} ({pod.netns})")
    return 0


def run_down(args: argparse.Namespace) -> int:
    from kubevip.lab import cpvip
    from kubevip.lab.instance import LabInstance

    for line in cpvip.instance_down(args.lab_id):  # the etcd relay runs on the host, not in a namespace
        print(line)
    for line in LabInstance(args.lab_id).down():
        print(line)
    return 0


def run_gc(args: argparse.Namespace) -> int:
    from kubevip.lab.network import reap_orphans

    for line in reap_orphans() or ["no orphaned labs"]:
        print(line)
    return 0
