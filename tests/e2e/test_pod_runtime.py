"""The lab's agent run as the rendered DaemonSet says (lab/podrun.py): the manifest's environment, only
its capabilities (setpriv), in-cluster credentials from a projected token file that the lab rotates.

One agent on one node: it announces a Service, survives a token rotation after which the previous
token is refused by the API server, and announces (and writes the status of) a Service created after
the rotation. A manifest without NET_RAW stops the agent at start-up, naming CAP_NET_RAW.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import sys
from pathlib import Path

import pytest

from kubevip.errors import LabError
from kubevip.lab.agents import AgentProcess, policy_env
from kubevip.lab.controlplane import http_get
from kubevip.lab.podrun import ProjectedToken, prepare
from kubevip.manifests import daemonset
from kubevip.manifests.agent import AgentOptions
from tests.e2e.conftest import E2E

NET_ADMIN, NET_RAW = 1 << 12, 1 << 13
PYTHON = os.path.realpath(sys.executable)  # what /proc/<agent>/exe shows once setpriv exec'ed the agent


def manifest(e2e: E2E, caps: tuple[str, ...] = ("NET_ADMIN", "NET_RAW")) -> dict[str, object]:
    """`kubevip manifest daemonset` with the test's settings as env (and, for the negative case, a
    securityContext that lacks a capability)."""
    node = e2e.nodes[0]
    extra = {**policy_env(e2e.lab), **e2e.fleet.extra_env}
    obj = daemonset.render(AgentOptions(interface=node.interface, extra_env=tuple(extra.items())))
    sc = obj["spec"]["template"]["spec"]["containers"][0]["securityContext"]  # type: ignore[index]
    sc["capabilities"]["add"] = list(caps)
    return obj


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def proc_env(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().partition("=")[::2] for item in raw if item)


def refused(cp_url: str, token: str) -> bool:
    """The API server answers 401 to `token` (a Service list the kube-vip account may do)."""
    try:
        http_get(f"{cp_url}/api/v1/services?limit=1", token)
    except LabError as exc:
        if "401" in str(exc):
            return True
        raise
    return False


def pod_agent(e2e: E2E, obj: dict[str, object], tmp_path: Path) -> tuple[AgentProcess, ProjectedToken]:
    node = e2e.nodes[0]
    run = prepare(e2e.cp, e2e.lab, node, obj, tmp_path)
    return AgentProcess(node, run.env, tmp_path / f"agent-{node.name}.log", prefix=run.prefix), run.token


async def started(e2e: E2E, agent: AgentProcess) -> int:
    """The agent's pid once sh and setpriv have exec'ed into Python (one pid throughout)."""
    pid = agent.pid
    assert pid is not None

    python = PYTHON

    def execed() -> bool:
        try:
            return os.readlink(f"/proc/{pid}/exe") == python
        except OSError:
            return False

    await e2e.eventually(execed, "the agent exec'ed through sh and setpriv", within=30)
    return pid


async def test_agent_with_manifest_capabilities_survives_token_rotation(e2e: E2E, tmp_path: Path) -> None:
    node = e2e.nodes[0]
    agent, token = pod_agent(e2e, manifest(e2e), tmp_path)
    await asyncio.to_thread(token.start)
    try:
        agent.start(e2e.lab)
        pid = await started(e2e, agent)
        st = proc_status(pid)
        # Exactly the manifest's capabilities, everywhere a later exec could get them from.
        assert int(st["CapEff"], 16) == NET_ADMIN | NET_RAW, st["CapEff"]
        assert int(st["CapPrm"], 16) == NET_ADMIN | NET_RAW and int(st["CapBnd"], 16) == NET_ADMIN | NET_RAW
        assert int(st["CapInh"], 16) == 0 and int(st["CapAmb"], 16) == 0
        assert st["NoNewPrivs"] == "1"  # allowPrivilegeEscalation: false
        env = proc_env(pid)
        host_ip = str(e2e.lab.topo.addresses(node)[0])
        assert env["vip_nodename"] == node.name  # fieldRef spec.nodeName
        assert env["prometheus_server"] == f"{host_ip}:2112"  # $(KUBEVIP_HOST_IP) from status.hostIP
        assert env["vip_interface"] == node.interface and env["svc_namespace"] == e2e.ns
        assert "KUBECONFIG" not in env and ipaddress.ip_address(env["KUBERNETES_SERVICE_HOST"])

        vip = e2e.vip(4)
        await e2e.service("before", [vip])
        await e2e.eventually(lambda: e2e.holders(vip), f"{node.name} holds {vip}", within=90)
        assert await e2e.holders(vip) == {node.name}

        # 600 s is the shortest lifetime this API server grants (no --service-account-max-token-expiration).
        with pytest.raises(LabError, match="10 minutes"):
            e2e.cp.kubectl_run("create", "token", "kube-vip", "-n", "kube-system", "--duration=599s")
        first = await asyncio.to_thread(token.rotate)
        assert token.rotations == 2
        # The kubelet's projected file was rewritten and the previous token is dead (once the API
        # server's 10 s cache of successful token reviews has passed): whatever the agent does from now
        # on, it does with the token it re-read from the file.
        await e2e.eventually(lambda: asyncio.to_thread(refused, e2e.cp.url, first),
                             "the API server refuses the token of before the rotation", within=60)
        assert not await asyncio.to_thread(refused, e2e.cp.url, token.token)

        vip2 = e2e.vip(4)
        await e2e.service("after", [vip2])
        await e2e.eventually(lambda: e2e.holders(vip2), f"{node.name} holds {vip2} after rotation", within=90)

        async def status_written() -> bool:
            return [ip for ip, _ in await e2e.ingress("after")] == [str(vip2)]

        await e2e.eventually(status_written, "status.loadBalancer of 'after' written after the rotation")
        assert agent.running and agent.starts == 1
        assert await e2e.holders(vip) == {node.name}  # the first VIP never went away
    finally:
        agent.stop()
        await asyncio.to_thread(token.stop)


async def test_missing_capability_stops_the_agent_naming_it(e2e: E2E, tmp_path: Path) -> None:
    """A DaemonSet without NET_RAW in ARP mode (the NET_ADMIN case and BGP mode: tests/unit)."""
    agent, token = pod_agent(e2e, manifest(e2e, ("NET_ADMIN",)), tmp_path)
    await asyncio.to_thread(token.start)
    try:
        agent.start(e2e.lab)
        assert agent.proc is not None
        rc = await asyncio.to_thread(agent.proc.wait, 60)
        log = agent.log_path.read_text()
        assert rc != 0, log
        assert "missing Linux capability: CAP_NET_RAW" in log and "capabilities.add" in log, log
    finally:
        agent.stop()
        await asyncio.to_thread(token.stop)
