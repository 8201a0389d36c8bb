"""RestClient against the real API server through the fault proxy: a 401 re-reads the token file at once,
a 429 with Retry-After is waited out within the request's deadline, every request has a deadline."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from kubevip.kube import rest
from kubevip.kube.errors import TooManyRequests, read_json
from kubevip.kube.kubeconfig import load_kubeconfig
from kubevip.kube.rest import Access, RestClient
from kubevip.lab.controlplane import ControlPlane
from kubevip.lab.faultproxy import FaultProxy

pytestmark = pytest.mark.cluster


@pytest.fixture
async def proxy(control_plane: ControlPlane) -> AsyncIterator[FaultProxy]:
    url = urlsplit(control_plane.url)
    ctx = load_kubeconfig(control_plane.admin_kubeconfig).ssl
    assert url.hostname and url.port and ctx is not None
    p = FaultProxy(url.hostname, url.port, ctx)
    await p.start()
    try:
        yield p
    finally:
        await p.close()


async def test_401_rereads_a_rotated_token_file_at_once(
    proxy: FaultProxy, control_plane: ControlPlane, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("not-a-valid-token\n")
    async with RestClient(Access(server=proxy.url, token_file=str(token))) as api:
        resp = await api.request("GET", "/api/v1/namespaces/default")
        resp.release()
        assert resp.status == 401
        token.write_text(control_plane.admin_token + "\n")  # rotated, as the kubelet does
        t0 = time.monotonic()
        got = await read_json(await api.request("GET", "/api/v1/namespaces/default"), "get namespace")
        assert got["metadata"]["name"] == "default"
        # one refused try with the old token, one with the file read again; no wait for the periodic read
        assert [r.target for r in proxy.since(t0)] == ["/api/v1/namespaces/default"] * 2


async def test_429_is_waited_out_within_the_deadline(proxy: FaultProxy, control_plane: ControlPlane) -> None:
    async with RestClient(Access(server=proxy.url, token=control_plane.admin_token)) as api:
        proxy.answer = (429, {"Retry-After": "1"})
        t0 = time.monotonic()
        # a deadline too short for the Retry-After: the caller sees TooManyRequests carrying it
        with pytest.raises(TooManyRequests) as info:
            await read_json(await api.request("GET", "/api/v1/namespaces/default", timeout=0.5), "get")
        assert info.value.retry_after == 1.0 and len(proxy.since(t0)) == 1
        # long enough: waited out inside the request, up to 3 times, then the answer is the 429
        with pytest.raises(TooManyRequests):
            await read_json(await api.request("GET", "/api/v1/namespaces/default", timeout=30), "get")
        assert len(proxy.since(t0)) == 1 + 4
        reqs = proxy.since(t0)[1:]
        assert all(b.at - a.at >= 0.95 for a, b in itertools.pairwise(reqs))


async def test_every_request_has_a_deadline(
    proxy: FaultProxy, control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rest, "DEFAULT_TIMEOUT", 1.0)  # 10 s in production
    async with RestClient(Access(server=proxy.url, token=control_plane.admin_token)) as api:
        proxy.delay = 3600  # nothing is ever answered
        with pytest.raises(TimeoutError):
            await api.request("GET", "/api/v1/namespaces/default")  # no timeout given


def _tcp_timers(remote_port: int) -> list[int]:
    """The kernel's timer kind (`tr` in /proc/net/tcp: 2 = keepalive) of each established IPv4 socket
    connected to 127.0.0.1:`remote_port`."""
    out = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state, timer = fields[2], fields[3], fields[5]
        if remote == f"0100007F:{remote_port:04X}" and state == "01":
            out.append(int(timer.split(":")[0], 16))
    return out


async def test_connections_carry_tcp_keepalive(proxy: FaultProxy, control_plane: ControlPlane) -> None:
    port = int(urlsplit(proxy.url).port or 0)
    async with RestClient(Access(server=proxy.url, token=control_plane.admin_token)) as api:
        await read_json(await api.request("GET", "/api/v1/namespaces/default"), "get namespace")
        # the pooled, idle connection has the kernel's keepalive timer armed (the proxy's side has not)
        assert _tcp_timers(port) == [2]
