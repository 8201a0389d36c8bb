"""kube-vip's own election layout: `svc_election=true` gives each Service its Lease `kubevip-<service>` in
the Service's namespace, its holder announces both families, and SIGTERM hands it to a peer."""

from __future__ import annotations

import signal

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tests.e2e.conftest import E2E

pytestmark = pytest.mark.e2e


async def test_per_service_lease_mode(e2e: E2E) -> None:
    v4, v6 = e2e.vip(4), e2e.vip(6)
    await e2e.service("web", [v4, v6], families=("IPv4", "IPv6"), policy="PreferDualStack")
    e2e.start_agents(vip_electionmode="lease", svc_election="true")
    holder = await e2e.eventually(lambda: _lease_holder(e2e, "kubevip-web"), "Lease kubevip-web held")
    assert await e2e.eventually(lambda: _reach_is(e2e, v4, holder), "IPv4 answered by the Lease holder")
    assert await e2e.eventually(lambda: _reach_is(e2e, v6, holder), "IPv6 answered by the Lease holder")
    assert await e2e.holders(v4) == await e2e.holders(v6) == {holder}

    e2e.fleet.agents[holder].signal(signal.SIGTERM)
    new = await e2e.eventually(lambda: _other_holder(e2e, "kubevip-web", holder), "a peer takes the Lease")
    assert await e2e.eventually(lambda: _reach_is(e2e, v4, new), "IPv4 follows the Lease")
    assert await e2e.eventually(lambda: _reach_is(e2e, v6, new), "IPv6 follows the Lease")


async def _lease_holder(e2e: E2E, name: str) -> str | None:
    try:
        lease = await client.CoordinationV1Api(e2e.api).read_namespaced_lease(name, e2e.ns)
    except ApiException:
        return None
    return lease.spec.holder_identity or None


async def _other_holder(e2e: E2E, name: str, old: str) -> str | None:
    h = await _lease_holder(e2e, name)
    return h if h and h != old else None


async def _reach_is(e2e: E2E, vip: object, node: str) -> bool:
    return await e2e.reach(vip) == node  # type: ignore[arg-type]
