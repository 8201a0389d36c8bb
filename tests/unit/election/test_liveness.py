"""A node's liveness Lease (election/liveness.py) on its own, in virtual time, against a scripted Lease API.

Found by mutation testing (docs/mutation/election-elector-liveness.md): the simulator runs every node
with the same timings and a fresh Lease per node, so a previous process's longer lease duration, the
epoch an acquire writes, the fence at the deadline after a quick failure, and the release paths had no
test that could fail.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from kubevip.election.cache import LeaseCache
from kubevip.election.leaseapi import Conflict, LeaseApi
from kubevip.election.liveness import (
    EXPIRED_BY_ANNOTATION,
    NODE_ANNOTATION,
    ROLE_LABEL,
    ROLE_NODE,
    Liveness,
    expire_peers,
)
from kubevip.election.offloop import Inline
from kubevip.election.record import LeaseRecord, parse_lease
from kubevip.election.timings import Timings
from tests.unit.election.sim import run_sim
from tests.unit.election.test_elector import OLD, StoreApi
from tests.unit.election.test_handback import ScriptedApi, rec

NODE = "me"  # the holder test_handback.rec() writes


def liveness(api: LeaseApi, fences: list[tuple[float, str]], epochs: list[int | None],
             clock: Callable[[], float], bridge: Inline | None = None) -> Liveness:
    async def fence(why: str) -> None:
        fences.append((clock(), why))

    cache = LeaseCache(api, "ns", f"{ROLE_LABEL}={ROLE_NODE}", 0.25, 10.0, clock=clock)
    lv: Liveness

    def on_epoch() -> None:
        epochs.append(lv.epoch)

    lv = Liveness(api, "ns", NODE, "lease", Timings(), cache, fence=fence, on_epoch=on_epoch, clock=clock,
                  bridge=bridge)
    return lv


def live_for(api: StoreApi, until: float, bridge: Inline | None = None, steps: list[float] | None = None
             ) -> tuple[Liveness, list[tuple[float, str]], list[int | None]]:
    """Step a Liveness on `api` in virtual time until `until` (it fences once, while holding); the time
    of each step into `steps`."""
    steps = [] if steps is None else steps
    fences: list[tuple[float, str]] = []
    epochs: list[int | None] = []
    box: list[Liveness] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        lv = liveness(api, fences, epochs, loop.time, bridge)
        box.append(lv)

        async def run() -> None:
            while True:
                steps.append(loop.time())
                await lv.step(lambda: not fences)

        task = loop.create_task(run())
        await asyncio.sleep(until)
        assert not task.done(), f"the liveness loop ended: {task}"
        task.cancel()

    run_sim(main)
    return box[0], fences, epochs


def test_a_previous_process_s_longer_lease_is_waited_out_at_its_own_duration() -> None:
    # Our node's liveness Lease, written by a previous process configured with 15 s (before an upgrade,
    # say): that process may announce until 15 s after we first saw its version, not our own 1.5 s.
    t = Timings()
    old = LeaseRecord("ns", "lease", "41", NODE, 15.0, 3, OLD, OLD, {ROLE_LABEL: ROLE_NODE})
    api = StoreApi(old, latency=0.01)
    lv, fences, epochs = live_for(api, 20.0)
    assert min(api.times("create") + api.times("replace")) == pytest.approx(15.0, abs=t.retry_period)
    assert len(api.times("get")) <= 15.0 / t.retry_period + 2, "looked again once per retry period"
    assert epochs == [4] and lv.epoch == 4 and fences == [], "a new epoch: one more transition"
    assert lv.renewals == len(api.times("replace")) - 1 > 0, "every renewal after the take-over counted"
    taken, first_renewal = api.times("replace")[:2]
    assert first_renewal - taken == pytest.approx(0.01 + t.liveness_period), "renewed a period later"
    assert {what for _, op, what in api.calls if op == "get"} == {("ns", "lease")}


def test_acquire_attempts_are_paced_and_bounded_by_the_renew_deadline() -> None:
    # Each call takes 0.01 s. A failed read or a lost race: look again a retry period after the attempt
    # began. A read or a write that never answers: abandoned at the renew deadline.
    t = Timings()
    api = StoreApi(latency=0.01, script=("fail", "ok", "conflict", "hang", "ok", "hang", "ok", "ok"))
    _, _, epochs = live_for(api, 5.0)
    assert api.times("get") == pytest.approx([0.0, 0.25, 0.5, 1.5, 2.51])
    assert api.times("create") == pytest.approx([0.26, 1.51, 2.52]) and epochs == [0]
    assert t.retry_period == 0.25 and t.renew_deadline == 1.0, "the times above assume these"


class Wedged(Inline):
    def owner_alive(self) -> bool:
        return False


def test_a_wedged_agent_neither_acquires_nor_renews_and_looks_again_each_retry_period() -> None:
    steps: list[float] = []
    api = StoreApi()
    live_for(api, 1.1, bridge=Wedged(), steps=steps)
    assert api.calls == [] and steps == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])


def test_a_lease_without_a_duration_expires_after_our_own() -> None:
    t = Timings()
    api = StoreApi(LeaseRecord("ns", "lease", "41", NODE, None, 3, OLD, OLD), latency=0.01)
    live_for(api, 5.0)
    first = min(api.times("create") + api.times("replace"))
    assert first == pytest.approx(t.lease_duration, abs=t.retry_period)


async def test_each_acquire_starts_a_new_epoch_and_says_whose_lease_it_is() -> None:
    loop = asyncio.get_running_loop()
    api = StoreApi()
    epochs: list[int | None] = []
    lv = liveness(api, [], epochs, loop.time)
    await lv.acquire()  # no Lease yet: created, epoch 0
    _, op, body = api.calls[-1]
    assert op == "create" and body["metadata"]["namespace"] == "ns"
    assert body["metadata"]["labels"] == {ROLE_LABEL: ROLE_NODE}
    assert body["metadata"]["annotations"][NODE_ANNOTATION] == NODE
    spec = body["spec"]
    assert spec["holderIdentity"] == NODE and spec["leaseTransitions"] == 0
    assert spec["acquireTime"] == spec["renewTime"], "a still_ours check tells processes apart by it"
    assert epochs == [0] and lv.is_live
    # Released (by us before a restart, or marked expired by a peer): taken in the next epoch.
    api.lease = LeaseRecord("ns", "lease", "41", None, 1.0, 5, None, OLD, {ROLE_LABEL: ROLE_NODE})
    lv.epoch = None
    await lv.acquire()
    _, op, body = api.calls[-1]
    assert op == "replace" and body["metadata"]["resourceVersion"] == "41"
    assert body["spec"]["leaseTransitions"] == 6 and body["spec"]["acquireTime"] != OLD
    assert epochs == [0, 6] and lv.epoch == 6


def test_a_quick_failure_just_before_the_deadline_still_fences_at_the_deadline() -> None:
    # Each call takes 0.1 s; live until 1.1 (created at 0.1). The renewals fail at once; the last one,
    # sent at 0.95, fails at 1.05: the next try would be at 1.2, but the fence is due at 1.1.
    api = StoreApi(latency=0.1)
    api.replaces_fail_until = 100.0
    _, fences, _ = live_for(api, 2.0)
    assert api.times("replace")[:3] == pytest.approx([0.45, 0.7, 0.95])
    assert [time for time, _ in fences] == [pytest.approx(1.1)], "fenced late: a peer may take over"


async def test_a_release_hands_back_our_own_landed_renewal_within_the_renew_deadline() -> None:
    # The last renewal we know of is version 7; one of ours landed as 8 without an answer.
    loop = asyncio.get_running_loop()
    api = ScriptedApi([False, True], [rec("8")])
    lv = liveness(api, [], [], loop.time)
    lv.mine, lv.epoch, lv.live_until = rec("7"), 3, loop.time() + 1.0
    await lv.release()
    assert api.replaced_versions() == ["7", "8"], "our own newer version must be handed back too"
    assert {c[2] for c in api.calls} == {Timings().renew_deadline}, "each call bounded by the renew deadline"
    assert lv.epoch is None and lv.mine is None and not lv.is_live
    calls = len(api.calls)
    await lv.release()  # twice (shutdown after a failed start, say): nothing left to hand back
    assert len(api.calls) == calls


async def test_a_lease_taken_away_fences_ends_the_epoch_and_leaves_nothing_to_release() -> None:
    loop = asyncio.get_running_loop()
    fences: list[tuple[float, str]] = []
    epochs: list[int | None] = []
    api = ScriptedApi([False], [rec("9", holder="peer")])  # the renewal conflicts: a peer marked us expired
    lv = liveness(api, fences, epochs, loop.time)
    lv.mine, lv.epoch, lv.live_until = rec("7"), 3, loop.time() + 1.0
    assert await lv.renew() is False
    assert len(fences) == 1 and epochs == [None] and lv.mine is None and not lv.is_live
    calls = len(api.calls)
    await lv.release()
    assert len(api.calls) == calls, "nothing of ours to hand back"


def renewing(api: ScriptedApi, until: float) -> tuple[Liveness, list[tuple[float, str]]]:
    """A Liveness that holds version 7 (sent at 0: live until the renew deadline), stepped on `api` in
    virtual time until `until`."""
    fences: list[tuple[float, str]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        lv = liveness(api, fences, [], loop.time)
        lv.mine, lv.epoch, lv.live_until = rec("7"), 3, Timings().renew_deadline
        box.append(lv)

        async def run() -> None:
            while True:
                await lv.step(lambda: not fences)

        task = loop.create_task(run())
        await asyncio.sleep(until)
        task.cancel()

    box: list[Liveness] = []
    run_sim(main)
    return box[0], fences


class SlowConflictApi(ScriptedApi):
    """Renewals conflict after `slow` seconds; then every read hangs (a black-holed path), or answers
    `gets` in order."""

    def __init__(self, slow: float, gets: list[LeaseRecord | None] | None = None) -> None:
        super().__init__([], list(gets or []))
        self.slow = slow

    async def replace(self, body: dict[str, Any], limit: float | None = None) -> LeaseRecord:
        self.calls.append(("replace", body, limit))
        await asyncio.sleep(self.slow)
        raise Conflict(409, "update lease ns/lease")

    async def get(self, namespace: str, name: str, limit: float | None = None) -> LeaseRecord | None:
        self.calls.append(("get", (namespace, name), limit))
        if not self.gets:
            await asyncio.Event().wait()
        return self.gets.pop(0)


def test_a_renewal_conflict_whose_read_black_holes_still_fences_at_the_renew_deadline() -> None:
    # The renewal sent at 0 conflicts only at 0.95; the read that tells our own landed write from a
    # foreign one never answers. It may take only the time left before the fence (0.05 s), not the
    # renewal's whole allowance again: fenced at 1.0, not 1.95 (peers may take over from 1.5).
    t = Timings()
    api = SlowConflictApi(0.95)
    _, fences = renewing(api, 3.0)
    assert [time for time, _ in fences] == [pytest.approx(t.renew_deadline)], "fenced late"
    read = next(c for c in api.calls if c[0] == "get")
    assert read[2] == pytest.approx(t.renew_deadline - 0.95), "the read's own limit: the time left"


def test_a_renewal_conflict_with_our_own_landed_write_keeps_the_epoch_on_that_version() -> None:
    api = SlowConflictApi(0.0, [rec("8")])
    lv, fences = renewing(api, 0.5)
    assert fences == [] and lv.epoch == 3 and lv.mine == rec("8"), "our own write: nothing changed hands"


class PeersApi(LeaseApi):
    """Leases by name with compare-and-swap (a replace on a version no longer current conflicts)."""

    def __init__(self, records: list[LeaseRecord | None], names: list[str]) -> None:  # no RestClient
        self.request_timeout = 1.0
        self.store = dict(zip(names, records, strict=True))
        self.calls: list[tuple[str, Any]] = []

    async def get(self, namespace: str, name: str, limit: float | None = None) -> LeaseRecord | None:
        self.calls.append(("get", (namespace, name)))
        return self.store.get(name)

    async def replace(self, body: dict[str, Any], limit: float | None = None) -> LeaseRecord:
        self.calls.append(("replace", body))
        meta = body["metadata"]
        cur = self.store.get(meta["name"])
        if cur is None or cur.resource_version != meta["resourceVersion"]:
            raise Conflict(409, "update lease")
        version = str(int(cur.resource_version) + 1)
        new = parse_lease({**body, "metadata": {**meta, "resourceVersion": version}})
        self.store[meta["name"]] = new
        return new

    def replaced(self) -> list[str]:
        return [body["metadata"]["name"] for op, body in self.calls if op == "replace"]


def peer(name: str, holder: str | None, rv: str, duration: float | None = 1.5,
         role: str = ROLE_NODE) -> LeaseRecord:
    return LeaseRecord("ns", name, rv, holder, duration, 2, OLD, OLD, {ROLE_LABEL: role}, {"x": "y"})


async def test_peers_are_marked_expired_only_after_their_own_duration_unchanged_on_our_clock() -> None:
    now = [0.0]
    t = Timings()
    seen = [  # the ones skipped first: skipping one must not end the scan
        peer("node-me", "me", "50"),  # our own
        peer("node-c", None, "60"),  # released
        peer("claim-x", "a", "70", role="claim"),  # not a liveness Lease
        peer("node-a", "a", "10", 15.0),  # a longer lease than ours
        peer("node-b", "b", "20", None),  # no duration written: ours
        peer("node-d", "d", "30"),  # renewed since we saw it (our watch stalled)
        peer("node-e", "e", "40"),  # deleted since
    ]
    current: list[LeaseRecord | None] = [*seen[:5], peer("node-d", "d", "31"), None]
    api = PeersApi(current, [r.name for r in seen])
    cache = LeaseCache(api, "ns", f"{ROLE_LABEL}={ROLE_NODE}", t.retry_period, 10.0, clock=lambda: now[0])
    for r in seen:
        cache.put(r)  # all first seen at 0

    async def expire(at: float, since: float = 0.0) -> float:
        now[0] = at
        return await expire_peers(api, cache, "ns", "me", t, since, at)

    assert await expire(1.0) == pytest.approx(1.25) and api.calls == [], "none expired: next look in a retry"
    assert await expire(1.4) == pytest.approx(1.5) and api.calls == [], "the next look at the first expiry"
    assert await expire(2.0, since=1.0) == pytest.approx(2.25) and api.calls == [], (
        "live only since 1.0: nobody expires before 1.0 + their duration"
    )
    assert await expire(2.0) == pytest.approx(2.25)
    assert sorted(api.replaced()) == ["node-b", "node-d", "node-e"]
    body = next(b for op, b in api.calls if op == "replace" and b["metadata"]["name"] == "node-b")
    assert body["metadata"]["resourceVersion"] == "20", "a compare-and-swap on the version we watched"
    assert "holderIdentity" not in body["spec"] and body["spec"]["leaseTransitions"] == 2
    assert body["metadata"]["annotations"][EXPIRED_BY_ANNOTATION] == "me"
    assert body["metadata"]["annotations"]["x"] == "y"
    assert cache.records["node-b"].holder is None and cache.records["node-b"].resource_version == "21"
    assert cache.records["node-d"].resource_version == "31", "the conflict refreshed our view"
    assert "node-e" not in cache.records, "gone: dropped"
    assert {w for op, w in api.calls if op == "get"} == {("ns", "node-d"), ("ns", "node-e")}
    assert await expire(14.9) == pytest.approx(15.0) and "node-a" not in api.replaced(), "a's own 15 s"
    await expire(15.0)
    assert api.replaced()[-1] == "node-a"
