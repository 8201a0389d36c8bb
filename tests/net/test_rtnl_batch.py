"""rtnl_batch.run against the real kernel: one acknowledgement per sendmsg, and still every request's own
outcome, whichever requests of a chunk fail (first, middle, last, across chunks)."""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubevip.net import rtnl_batch
from kubevip.net.namespace import Netns
from tests.fixtures.netns import scratch_netns

N = rtnl_batch.CHUNK + 44  # two chunks


@pytest.fixture(scope="module")
def ns() -> Iterator[Netns]:
    with scratch_netns("kvt-rtnl") as name:
        yield Netns(name)


def _ip(i: int, family: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(f"198.18.{i // 256}.{i % 256}" if family == 4 else f"fd00:5::{i + 1:x}")


def _present(ns: Netns) -> set[str]:
    with ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        return {str(a.ip) for a in rtnl_batch.address_dump(sock, 1, "test") if a.proto == 248}


def _batch(ns: Netns, ops: list[tuple[str, int, int]]) -> list[int]:
    reqs = [rtnl_batch.address_request(op, seq, 1, _ip(i, fam), 32 if fam == 4 else 128, 248,
                                       rtnl_batch.IFA_F_NODAD if fam == 6 else 0)
            for seq, (op, i, fam) in enumerate(ops, start=1)]
    with ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        return rtnl_batch.run(sock, reqs, "test")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sets(st.integers(0, N - 1), max_size=12), st.sampled_from([4, 6]))
def test_every_request_gets_its_own_outcome(ns: Netns, failing: set[int], family: int) -> None:
    """Addresses at the `failing` positions are there already, so their exclusive add fails (EEXIST);
    every other add succeeds. Then a delete of everything, where the failing positions are gone first
    (EADDRNOTAVAIL). The first, middle and last requests of a chunk all get their own code."""
    want_there = [("add", i, family) for i in sorted(failing)]
    assert _batch(ns, want_there) == [0] * len(want_there)
    adds = [("add", i, family) for i in range(N)]
    assert _batch(ns, adds) == [errno.EEXIST if i in failing else 0 for i in range(N)]
    assert _present(ns) == {str(_ip(i, family)) for i in range(N)}
    gone = [("del", i, family) for i in sorted(failing)]
    assert _batch(ns, gone) == [0] * len(gone)
    dels = [("del", i, family) for i in range(N)]
    assert _batch(ns, dels) == [errno.EADDRNOTAVAIL if i in failing else 0 for i in range(N)]
    assert _present(ns) == set()


def test_the_chunk_boundaries_and_the_very_last_request(ns: Netns) -> None:
    edges = {0, 1, rtnl_batch.CHUNK - 1, rtnl_batch.CHUNK, N - 1}
    _batch(ns, [("add", i, 4) for i in sorted(edges)])
    assert _batch(ns, [("add", i, 4) for i in range(N)]) == [
        errno.EEXIST if i in edges else 0 for i in range(N)]
    _batch(ns, [("del", i, 4) for i in range(N)])
    assert _present(ns) == set()
