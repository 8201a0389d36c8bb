"""Control plane + network wired together: Node objects for lab nodes, kubeconfigs usable inside them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from kubevip.lab import pods
from kubevip.lab.client import connect
from kubevip.lab.controlplane import ControlPlane
from kubevip.lab.network import LabNetwork

T = TypeVar("T")


def node_kubeconfig(cp: ControlPlane, net: LabNetwork) -> Path:
    """The kube-vip token's kubeconfig, API server reached over the lab uplink (for agents in nodes)."""
    path = net.state_dir / "kube-vip-in-lab.kubeconfig"
    return cp.write_kubeconfig(path, cp.kubevip_token, cp.url_via(net.api_address), "kube-vip")


def node_admin_kubeconfig(cp: ControlPlane, net: LabNetwork) -> Path:
    """The admin token's kubeconfig reached over the lab uplink (for tools run inside a namespace)."""
    return cp.write_kubeconfig(
        net.state_dir / "admin-in-lab.kubeconfig", cp.admin_token, cp.url_via(net.api_address), "admin"
    )


async def register_nodes(cp: ControlPlane, net: LabNetwork) -> None:
    """Create a Node object per lab node, with its addresses of the lab's families as InternalIPs (IPv4
    first)."""
    async with connect(cp.admin_kubeconfig) as api:
        for n in net.nodes:
            await pods.create_node(api, n.name, net.topo.addresses(n))


def connect_network(cp: ControlPlane, net: LabNetwork) -> None:
    """Register the lab's nodes and write the in-lab kubeconfigs (safe to repeat)."""
    run_sync(lambda: register_nodes(cp, net))
    node_kubeconfig(cp, net)
    node_admin_kubeconfig(cp, net)


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, even if this thread already runs an event loop."""
    box: dict[str, T] = {}
    err: list[BaseException] = []

    def target() -> None:
        async def main() -> None:
            box["v"] = await make()

        try:
            asyncio.run(main())
        except BaseException as exc:  # handed to the caller's thread
            err.append(exc)

    t = threading.Thread(target=target, name="kubevip-lab-sync")
    t.start()
    t.join()
    if err:
        raise err[0]
    return box["v"]
