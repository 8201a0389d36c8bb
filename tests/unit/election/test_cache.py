"""LeaseCache's bookkeeping (put/drop/_replace/_event): what the electors read from it decides who is
live and whose claim is valid, so a Lease deleted on the server must leave the view at once, and its
absence be timed from then (found by mutation testing: no fast test read the cache after a drop)."""

from __future__ import annotations

from typing import Any

from kubevip.election.cache import LeaseCache
from kubevip.election.record import lease_body
from tests.unit.controlplane.fakes import FakeLeaseApi

NS = "kube-system"


def _obj(name: str, holder: str, rv: str, transitions: int = 0) -> dict[str, Any]:
    body = lease_body(NS, name, holder=holder, duration=1.5, transitions=transitions, acquire_wall=0.0,
                      renew_wall=0.0, labels={"role": "node"})
    body["metadata"]["resourceVersion"] = rv
    return body


def _cache(now: list[float]) -> LeaseCache:
    return LeaseCache(FakeLeaseApi().view("me"), NS, "role", 0.25, 10.0, clock=lambda: now[0])


def test_a_deleted_lease_leaves_the_view_and_its_absence_is_timed_from_then() -> None:
    now = [10.0]
    cache = _cache(now)
    cache._event("ADDED", _obj("a", "node-a", "1"))
    cache._event("ADDED", _obj("b", "node-b", "2"))
    cache.take_dirty()
    cache.changed.clear()
    version = cache.version
    now[0] = 12.0
    cache._event("DELETED", _obj("a", "node-a", "3"))
    assert set(cache.records) == {"b"} and set(cache.seen) == {"b"}
    assert cache.absent_since == {"a": 12.0}
    assert cache.take_dirty() == {"a"} and cache.changed.is_set() and cache.version == version + 1
    now[0] = 13.0
    cache.drop("a")  # already gone: nothing changes, the absence keeps its start
    assert cache.absent_since == {"a": 12.0} and cache.take_dirty() == set() and cache.version == version + 1
    cache._event("ADDED", _obj("a", "node-a", "4", transitions=1))  # back: no longer absent
    assert cache.absent_since == {} and cache.records["a"].transitions == 1


async def test_a_relist_drops_what_the_server_no_longer_has_and_marks_the_cache_synced() -> None:
    now = [5.0]
    cache = _cache(now)
    await cache._replace([_obj("a", "node-a", "1"), _obj("b", "node-b", "2")])
    assert cache.synced and set(cache.records) == {"a", "b"}
    cache.changed.clear()
    await cache._replace([_obj("b", "node-b", "5")])
    assert set(cache.records) == {"b"} and cache.records["b"].resource_version == "5"
    assert cache.absent_since == {"a": 5.0} and cache.changed.is_set()


def test_others_version_moves_only_with_the_records_whose_version_does_not_matter() -> None:
    """Scalable mode derives the live nodes from the liveness Leases alone and keeps that view while
    `others_version` stands still: the many claim writes must not move it, every decisive change of a
    liveness Lease (taken, released, a new epoch, deleted) must."""
    cache = LeaseCache(FakeLeaseApi().view("me"), NS, "role", 0.25, 10.0,
                       version_matters=lambda rec: rec.labels.get("role") == "claim")

    def claim(rv: str, holder: str) -> dict[str, Any]:
        body = _obj("claim-1", holder, rv)
        body["metadata"]["labels"] = {"role": "claim"}
        return body

    cache._event("ADDED", _obj("node-a", "node-a", "1"))
    live = cache.others_version
    assert live > 0
    for rv, holder in (("2", "node-a"), ("3", "node-a"), ("4", "node-b")):
        cache._event("MODIFIED", claim(rv, holder))
    cache._event("DELETED", claim("5", "node-b"))
    assert cache.others_version == live, "claims moved the live view's version"
    assert cache.version > live
    cache._event("MODIFIED", _obj("node-a", "node-a", "6"))  # a renewal: nothing decisive
    assert cache.others_version == live
    cache._event("MODIFIED", _obj("node-a", "node-a", "7", transitions=1))  # a new epoch
    assert cache.others_version == live + 1
    cache._event("ADDED", _obj("node-b", "node-b", "8"))
    cache._event("DELETED", _obj("node-a", "node-a", "9"))
    assert cache.others_version == live + 3
