"""A node's namespace for the agent's netns tests: `eth0` (a veth, up) with 10.9.0.5/24 and fd00:9::5/64,
default routes via 10.9.0.1 and fd00:9::1, `lo` up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kubevip.net.namespace import Netns
from tests.fixtures.netns import ip_in, scratch_netns


@pytest.fixture
def eth0_netns() -> Iterator[Netns]:
    with scratch_netns("kvt-node") as name:
        ip_in(name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
        ip_in(name, "link", "set", "eth0", "up")
        ip_in(name, "link", "set", "eth0p", "up")
        ip_in(name, "link", "set", "lo", "up")
        ip_in(name, "addr", "add", "10.9.0.5/24", "dev", "eth0")
        ip_in(name, "-6", "addr", "add", "fd00:9::5/64", "dev", "eth0", "nodad")
        ip_in(name, "route", "add", "default", "via", "10.9.0.1")
        ip_in(name, "-6", "route", "add", "default", "via", "fd00:9::1")
        yield Netns(name)
