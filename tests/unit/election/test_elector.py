"""LeaseElector.release(): withdraw, then hand the Lease back, and never campaign again afterwards.

Found by mutation testing (docs/testing.md): the simulator releases only from outside a running
elector, so these paths had no test.
"""

from __future__ import annotations

import asyncio
import copy
import random
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import aiohttp
import pytest

from kubevip.election.elector import LOST_RACES_AT_ONCE, LeaseElector
from kubevip.election.leaseapi import Conflict, LeaseApi
from kubevip.election.record import LeaseRecord, parse_lease
from kubevip.election.timings import Timings
from kubevip.tasks import TaskGroupGuard, bounded, spawn
from tests.fixtures.waiting import eventually
from tests.unit.election.sim import BLACKHOLE, Fault, SimApi, SimServer, run_sim
from tests.unit.election.test_handback import ScriptedApi, rec


async def test_a_release_before_the_elector_ran_keeps_it_from_ever_campaigning() -> None:
    server = SimServer(random.Random(1))
    events: list[str] = []

    async def started() -> None:
        events.append("started")

    async def stopped() -> None:
        events.append("stopped")

    e = LeaseElector(SimApi(server, "a", "a-1"), "ns", "kubevip-web", "a", Timings(), started, stopped)
    guard = TaskGroupGuard("test")
    task = spawn(guard, "a", e.run())  # created, not yet running
    try:
        await e.release()
        await bounded(asyncio.shield(task), 5)  # run() sees it is closing and returns at once
        assert events == [] and not e.is_leader
        assert server.get("kubevip-web") is None, "a released elector wrote the Lease"
    finally:
        await guard.close()
        await server.drain()


async def test_a_release_from_the_elector_s_own_callback_ends_its_campaign() -> None:
    server = SimServer(random.Random(2))
    events: list[str] = []
    e: LeaseElector

    async def started() -> None:
        events.append("started")
        await e.release()  # e.g. the agent shutting down while this unit's on_started runs

    async def stopped() -> None:
        events.append("stopped")

    e = LeaseElector(SimApi(server, "a", "a-1"), "ns", "kubevip-web", "a", Timings(), started, stopped)
    guard = TaskGroupGuard("test")
    task = spawn(guard, "a", e.run())
    try:
        await bounded(asyncio.shield(task), 5)  # ends after the release; never campaigns again
        assert events == ["started", "stopped"] and not e.is_leader
        lease = server.get("kubevip-web")
        assert lease is not None and not lease.held, "handed back, not taken again"
    finally:
        await guard.close()
        await server.drain()


async def test_a_release_hands_back_our_own_landed_renewal_within_the_renew_deadline() -> None:
    # White-box: the elector last saw version 7 as its own; a renewal of ours landed as version 8 but
    # its answer was lost, so the release conflicts, re-reads, and must release version 8.
    api = ScriptedApi([False, True], [rec("8")])

    async def nothing() -> None:
        pass

    timings = Timings()
    e = LeaseElector(api, "ns", "lease", "me", timings, nothing, nothing)
    e._mine = rec("7")
    await e.release()
    assert api.replaced_versions() == ["7", "8"], "our own newer version must be handed back too"
    assert {c[2] for c in api.calls} == {timings.renew_deadline}, "each call bounded by the renew deadline"
    await eventually(lambda: e._mine is None, "nothing left to hand back", 1)


class RenewApi(ScriptedApi):
    """Acquires (create), then answers each renewal from `replaces` (True, False: Conflict, or an
    exception to raise) and each read after the first from `gets` (a record, None, an exception, or
    "hang"; when they run out, every read hangs)."""

    def __init__(self, replaces: list[object], gets: list[object]) -> None:
        super().__init__([], [])
        self.script_replaces = list(replaces)
        self.script_gets = [None, *gets]  # the candidate reads first: no Lease yet
        self.version = 7

    async def create(self, body: dict[str, Any], limit: float | None = None) -> LeaseRecord:
        self.calls.append(("create", body, limit))
        return rec("7")

    async def replace(self, body: dict[str, Any], limit: float | None = None) -> LeaseRecord:
        self.calls.append(("replace", body, limit))
        step = self.script_replaces.pop(0) if self.script_replaces else True
        if isinstance(step, BaseException):
            raise step
        if not step:
            raise Conflict(409, "update lease ns/lease")
        self.version += 1
        return rec(str(self.version))

    async def get(self, namespace: str, name: str, limit: float | None = None) -> LeaseRecord | None:
        self.calls.append(("get", (namespace, name), limit))
        step = self.script_gets.pop(0) if self.script_gets else "hang"
        if isinstance(step, BaseException):
            raise step
        if step == "hang":  # a black-holed read: no answer, ever
            await asyncio.Event().wait()
        return cast(LeaseRecord | None, step)


def campaign(api: LeaseApi, until: float, identity: str = "me",
             probe: Callable[[LeaseElector], None] | None = None, at: float = 0.0,
             timings: Timings | None = None, fresh: bool = False) -> tuple[list[float], list[float]]:
    """Run an elector on `api` in virtual time until `until` (calling `probe` at `at`): (times started,
    times stopped)."""
    started: list[float] = []
    stopped: list[float] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def on_started() -> None:
            started.append(loop.time())

        async def on_stopped() -> None:
            stopped.append(loop.time())

        e = LeaseElector(api, "ns", "lease", identity, timings or Timings(), on_started, on_stopped,
                         clock=loop.time, fresh=fresh)
        guard = TaskGroupGuard("test")
        task = spawn(guard, "e", e.run())
        if probe is not None:
            await asyncio.sleep(at)
            probe(e)
        await asyncio.sleep(until - loop.time())
        assert not task.done(), f"the elector ended: {task.exception() if not task.cancelled() else ''}"
        stopped_before = list(stopped)
        await guard.close()
        stopped[:] = stopped_before

    run_sim(main)
    return started, stopped


def test_a_renewal_conflict_whose_read_black_holes_still_fences_at_the_renew_deadline() -> None:
    # The read that tells our own landed write from someone else's is bounded by the fencing deadline.
    t = Timings()
    api = RenewApi([False], ["hang"])  # acquired at 0; the first renewal, a retry period later, conflicts
    started, stopped = campaign(api, t.lease_duration)
    assert started == [0.0]
    assert stopped and stopped[0] <= t.renew_deadline + 1e-9, "fenced late: a peer may already hold it"
    limit = [c for c in api.calls if c[0] == "get"][1][2]
    assert limit == pytest.approx(t.renew_deadline - t.retry_period), "the read's own limit: time left"


class TimedRenewApi(RenewApi):
    """RenewApi that notes the virtual time of every renewal."""

    def __init__(self) -> None:
        super().__init__([], [])
        self.renewed_at: list[float] = []

    async def replace(self, body: dict[str, Any], limit: float | None = None) -> LeaseRecord:
        self.renewed_at.append(asyncio.get_running_loop().time())
        return await super().replace(body, limit)


def test_the_winner_renews_one_retry_period_after_the_write_that_won_not_at_once() -> None:
    # Winning is a write: a renewal right after it was a second Lease write on the API server while the
    # new leader's first announcement waited on that server (bench/compare.py, BGP create: 14 ms).
    t = Timings()
    api = TimedRenewApi()
    started, stopped = campaign(api, 1.0)
    assert started == [0.0] and stopped == []
    assert api.renewed_at[:3] == pytest.approx([t.retry_period, 2 * t.retry_period, 3 * t.retry_period])


class SlowConflictApi(RenewApi):
    """Acquired at 0 (the fence due at 1.0); the first renewal, sent at 0.25, answers with a conflict
    only at 0.98, 20 ms before the fence."""

    async def replace(self, body: dict[str, Any], limit: float | None = None) -> LeaseRecord:
        if not any(c[0] == "replace" for c in self.calls):
            await asyncio.sleep(0.73)
        return await super().replace(body, limit)


def test_a_renewal_conflict_just_before_the_deadline_fences_at_the_deadline() -> None:
    """The read after a conflict may take only the time left: it had a 50 ms floor, and a conflict that
    came back 20 ms before the fence made the holder fence 30 ms late (the election simulator, lease
    mode, seed 448 of 500: 5 ms)."""
    t = Timings()
    api = SlowConflictApi([False], ["hang"])
    started, stopped = campaign(api, t.lease_duration + 0.5)
    assert started == [0.0]
    assert stopped and stopped[0] == pytest.approx(t.renew_deadline), "fenced late"


def test_a_renewal_conflict_with_our_own_landed_write_keeps_leading_on_that_version() -> None:
    t = Timings()
    api = RenewApi([False], [rec("8")])
    api.version = 8
    started, stopped = campaign(api, 3 * t.lease_duration)
    assert started == [0.0] and stopped == [], "our own write: nothing changed hands"
    versions = api.replaced_versions()
    assert versions[:3] == ["7", "8", "9"], "renewed at once on the version the read found"


def test_a_renewal_conflict_we_cannot_read_back_keeps_leading_until_the_deadline_says_otherwise() -> None:
    t = Timings()
    api = RenewApi([False], [aiohttp.ServerDisconnectedError("lost")])
    started, stopped = campaign(api, 3 * t.lease_duration)
    assert started == [0.0] and stopped == [], "a transient read error is no proof of a foreign write"
    assert api.replaced_versions()[:2] == ["7", "7"]


# -- found by mutation testing, run 4 (docs/mutation/election-elector-liveness.md) -----------------

OLD = "2020-01-01T00:00:00.000000Z"  # an acquireTime long past (never the one an acquire writes now)


class StoreApi(LeaseApi):
    """One Lease in memory with compare-and-swap, for virtual time: every call takes `latency`, replaces
    sent before `replaces_fail_until` fail (transient), and `script` answers the calls in order ("ok",
    "fail": transient, "conflict": a write that loses a race, "hang": a call that never answers,
    "slow:S": an answer S seconds late).
    `calls` records (time, op, namespace and name or the body)."""

    def __init__(self, lease: LeaseRecord | None = None, latency: float = 0.0,
                 script: tuple[str, ...] = ()) -> None:  # no RestClient behind
        self.request_timeout = 1.0
        self.lease = lease
        self.latency = latency
        self.script = list(script)
        self.replaces_fail_until = -1.0
        self.watches: list[list[tuple[float, str, LeaseRecord | BaseException]]] = []
        self.calls: list[tuple[float, str, Any]] = []

    async def _call(self, op: str, what: Any) -> str:
        now = asyncio.get_running_loop().time()
        self.calls.append((now, op, what))
        step = self.script.pop(0) if self.script else "ok"
        if op == "replace" and now < self.replaces_fail_until:
            step = "fail"
        await asyncio.sleep(self.latency)
        if step.startswith("slow:"):
            await asyncio.sleep(float(step.split(":", 1)[1]))
            step = "ok"
        if step == "fail":
            raise aiohttp.ServerDisconnectedError("down")
        if step == "hang":
            await asyncio.Event().wait()
        return step

    def _store(self, body: dict[str, Any]) -> LeaseRecord:
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(int(self.lease.resource_version) + 1 if self.lease else 1)
        self.lease = parse_lease(body)
        return self.lease

    async def get(self, namespace: str, name: str, limit: float | None = None) -> LeaseRecord | None:
        await self._call("get", (namespace, name))
        return self.lease

    async def create(self, body: dict[str, Any], limit: float | None = None) -> LeaseRecord:
        if await self._call("create", body) == "conflict" or self.lease is not None:
            raise Conflict(409, "create lease ns/lease")
        return self._store(body)

    async def replace(self, body: dict[str, Any], limit: float | None = None) -> LeaseRecord:
        step = await self._call("replace", body)
        if step == "conflict" or self.lease is None:
            raise Conflict(409, "update lease ns/lease")
        if body["metadata"]["resourceVersion"] != self.lease.resource_version:
            raise Conflict(409, "update lease ns/lease")
        return self._store(body)

    async def watch(self, namespace: str, selector: str, resource_version: str, idle_timeout: float,
                    field_selector: str | None = None) -> AsyncIterator[tuple[str, LeaseRecord]]:
        """Each watch plays the next of `watches`: (time, kind, record or an exception to raise) at
        those times, then hears nothing more."""
        loop = asyncio.get_running_loop()
        self.calls.append((loop.time(), "watch", (namespace, field_selector)))
        for at, kind, item in self.watches.pop(0) if self.watches else []:
            await asyncio.sleep(max(0.0, at - loop.time()))
            if isinstance(item, BaseException):
                raise item
            if kind != "BOOKMARK":  # the store changed first (another writer), then told us
                self.lease = None if kind == "DELETED" else item
            yield kind, item
        await asyncio.Event().wait()

    def times(self, op: str) -> list[float]:
        return [t for t, o, _ in self.calls if o == op]


def test_a_peer_s_longer_lease_duration_is_waited_out() -> None:
    # A peer with a longer lease (a kube-vip node during a migration: its defaults are longer than ours)
    # that stopped renewing: by its own promise it may announce until 15 s after we first saw its
    # version, not only our own 1.5 s.
    peer = LeaseRecord("ns", "lease", "41", "kube-vip-peer", 15.0, 3, OLD, OLD)
    api = StoreApi(peer)
    leader: list[str | None] = []
    started, _ = campaign(api, 20.0, probe=lambda e: leader.append(e.leader), at=10.0)
    assert leader == ["kube-vip-peer"], "the follower names the holder it follows"
    first_write = min(api.times("replace") + api.times("create"))
    assert first_write == pytest.approx(15.0) and started == [pytest.approx(15.0)], "taken at its expiry"


def test_the_follower_ignores_bookmarks_and_counts_expiry_from_the_last_renewal_it_saw() -> None:
    # A bookmark carries only a resourceVersion, here the Lease's own (nothing else was written since):
    # taken for a release, the compare-and-swap on it would succeed and take a held Lease. A renewal
    # (a new version) restarts the clock at the holder's own duration.
    peer = LeaseRecord("ns", "lease", "41", "peer", 15.0, 3, OLD, OLD)
    api = StoreApi(peer, latency=0.01)
    bookmark = LeaseRecord("", "", "41", None, None, 0)
    renewed = LeaseRecord("ns", "lease", "42", "peer", 15.0, 3, OLD, OLD)
    api.watches = [[(1.0, "BOOKMARK", bookmark), (5.0, "MODIFIED", renewed)]]
    leader: list[str | None] = []
    started, _ = campaign(api, 25.0, probe=lambda e: leader.append(e.leader), at=10.0)
    assert api.times("get") == pytest.approx([0.0, 20.0]), "read again only when the renewal expired"
    assert started == [pytest.approx(20.02)] and leader == ["peer"]
    assert [w for _, op, w in api.calls if op == "watch"] == [("ns", "metadata.name=lease")]


def test_a_deleted_lease_is_created_at_once_and_a_broken_watch_is_retried_after_the_retry_period() -> None:
    peer = LeaseRecord("ns", "lease", "41", "peer", 15.0, 3, OLD, OLD)
    api = StoreApi(peer, latency=0.01)
    gone = LeaseRecord("ns", "lease", "43", "peer", 15.0, 3, OLD, OLD)
    api.watches = [[(1.0, "", aiohttp.ServerDisconnectedError("cut"))], [(2.0, "DELETED", gone)]]
    started, _ = campaign(api, 5.0)
    assert api.times("get") == pytest.approx([0.0, 1.25, 2.0])
    assert api.times("create") == pytest.approx([2.01]) and started == [pytest.approx(2.02)]


def test_a_lease_without_a_duration_expires_after_our_own() -> None:
    bare = LeaseRecord("ns", "lease", "41", "peer", None, 3, OLD, OLD)
    api = StoreApi(bare)
    started, _ = campaign(api, 5.0)
    assert started == [pytest.approx(Timings().lease_duration)]


def test_a_candidate_paces_its_attempts_and_reads_a_lost_race_again_at_once() -> None:
    # Each call takes 0.1 s. A failed read: try again a retry period after the attempt began. A lost
    # race (the create conflicts): read again at once, up to LOST_RACES_AT_ONCE (3) in a row; the fourth
    # waits for the retry period. A read that never answers is abandoned at the renew deadline.
    t = Timings()
    assert LOST_RACES_AT_ONCE == 3, "the script below loses four races in a row"
    api = StoreApi(latency=0.1, script=("fail", "ok", "conflict", "ok", "conflict", "ok", "conflict", "ok",
                                        "conflict", "hang", "ok", "ok"))
    started, _ = campaign(api, 5.0)
    assert api.times("get") == pytest.approx([0.0, 0.25, 0.45, 0.65, 0.85, 1.1, 2.1])
    assert api.times("create") == pytest.approx([0.35, 0.55, 0.75, 0.95, 2.2])
    assert started == [pytest.approx(2.3)]
    assert {what for _, op, what in api.calls if op == "get"} == {("ns", "lease")}
    assert t.retry_period == 0.25 and t.renew_deadline == 1.0, "the times above assume these"


class TakenWhileWeWriteApi(StoreApi):
    """Our first compare-and-swap loses: a peer wrote the Lease first (its holder now, renewed)."""

    def __init__(self, lease: LeaseRecord, peer: LeaseRecord, latency: float) -> None:
        super().__init__(lease, latency)
        self.peer: LeaseRecord | None = peer

    async def replace(self, body: dict[str, Any], limit: float | None = None) -> LeaseRecord:
        if self.peer is not None:
            await self._call("replace", body)
            self.lease, self.peer = self.peer, None
            raise Conflict(409, "update lease ns/lease")
        return await super().replace(body, limit)


def test_a_second_lost_race_in_a_row_still_follows_the_winner_at_once() -> None:
    """A new Service's Lease left over, released, by an earlier Service of the same name: our create
    conflicts (it exists), our compare-and-swap on the released version conflicts too (a peer took it
    first). The peer is stopped 0.2 s later (SIGTERM: it releases). We take over then, not after the
    retry period (1 s) that a second lost race used to sleep: that sleep was the 859 ms hand-over of the
    2026-12-06 side-by-side run (docs/performance.md)."""
    t = Timings(lease_duration=5.0, renew_deadline=3.0, retry_period=1.0)
    left_over = LeaseRecord("ns", "lease", "41", None, 5.0, 3, OLD, OLD)
    peer = LeaseRecord("ns", "lease", "42", "peer", 5.0, 4, OLD, OLD)
    api = TakenWhileWeWriteApi(left_over, peer, latency=0.01)
    api.watches = [[(0.2, "MODIFIED", LeaseRecord("ns", "lease", "43", None, 5.0, 4, OLD, OLD))]]
    started, _ = campaign(api, 3.0, timings=t, fresh=True)  # a unit that appeared after the first pass
    assert api.times("create") == pytest.approx([0.0]) and api.times("replace")[0] == pytest.approx(0.02)
    assert api.times("get") == pytest.approx([0.01, 0.03]), "read again at once after each lost race"
    assert started == [pytest.approx(0.21)], "taken on the release, 10 ms after it"


def test_a_leader_fenced_by_failing_renewals_takes_its_own_unchanged_version_back_at_once() -> None:
    # Its renewals fail for a renew deadline, so it fences; the Lease is still the version it wrote
    # (nobody else wrote since), so it acquires again at once instead of waiting for its own expiry.
    api = StoreApi()
    api.replaces_fail_until = 1.0
    started, stopped = campaign(api, 5.0)
    assert stopped == [1.0] and started == [0.0, 1.0]
    assert api.lease is not None and api.lease.holder == "me"


async def test_an_acquire_writes_a_client_go_compatible_lease() -> None:
    async def nothing() -> None:
        pass

    seen: list[tuple[str, bool]] = []
    api = StoreApi()
    e = LeaseElector(api, "ns", "lease", "me", Timings(), nothing, nothing,
                     observer=lambda name, leading: seen.append((name, leading)))

    def written() -> dict[str, Any]:
        body = api.calls[-1][2]
        spec = body["spec"]
        assert spec["holderIdentity"] == "me" and spec["acquireTime"] == spec["renewTime"] != OLD
        return cast(dict[str, Any], body)

    await e._write_acquire(None)  # no Lease yet: created, no transition
    body = written()
    assert api.calls[-1][1] == "create"
    assert body["metadata"]["namespace"] == "ns" and "resourceVersion" not in body["metadata"]
    assert body["spec"]["leaseTransitions"] == 0
    # A peer's Lease (expired or released): one more transition, its labels and annotations kept.
    api.lease = LeaseRecord("ns", "lease", "41", "peer", 15.0, 3, OLD, OLD, {"l": "v"}, {"a": "b"})
    await e._write_acquire(api.lease)
    body = written()
    assert api.calls[-1][1] == "replace" and body["metadata"]["resourceVersion"] == "41"
    assert body["metadata"]["namespace"] == "ns" and body["spec"]["leaseTransitions"] == 4
    assert body["metadata"]["labels"] == {"l": "v"} and body["metadata"]["annotations"]["a"] == "b"
    # Our own expired Lease (a previous process under this name): no transition, a new acquireTime.
    api.lease = LeaseRecord("ns", "lease", "50", "me", 1.5, 4, OLD, OLD)
    await e._write_acquire(api.lease)
    assert written()["spec"]["leaseTransitions"] == 4
    assert e.leader == "me" and e.transitions == 3
    await e._stop_leading("test")
    assert seen == [("lease", True)] * 3 + [("lease", False)], "the observer (leader metric) follows"


@pytest.mark.parametrize("seed", range(3))
def test_an_old_process_that_comes_back_leaves_its_successor_s_lease_alone(seed: int) -> None:
    """A restart under the same name: the old process (identity "a") is cut off and fences, the new one
    ("a" too) waits for expiry and takes over; then the old one's API path heals, and later it shuts
    down. The Lease names its holder, but neither the version nor the acquireTime the old process
    wrote: its campaign must not take it and its release must not hand it back (a peer would then hold
    it while the new process still announces)."""
    overlaps: list[tuple[float, str, list[str]]] = []
    leading: dict[str, bool] = {}
    holding: list[set[str]] = []
    server = SimServer(random.Random(seed), [Fault(BLACKHOLE, "old", 1.0, 6.0)])

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def elector(inc: str, node: str, identity: str) -> LeaseElector:
            async def started() -> None:
                others = [i for i, v in leading.items() if v]
                if others:
                    overlaps.append((loop.time(), inc, others))
                leading[inc] = True

            async def stopped() -> None:
                leading[inc] = False

            return LeaseElector(SimApi(server, node, inc), "ns", "kubevip-web", identity, Timings(),
                                started, stopped, clock=loop.time)

        old, new, peer = elector("a-1", "old", "a"), elector("a-2", "new", "a"), elector("b-1", "b", "b")
        guard = TaskGroupGuard("test")
        spawn(guard, "a-1", old.run())
        await asyncio.sleep(1.0)
        spawn(guard, "a-2", new.run())
        await asyncio.sleep(2.0)
        assert leading == {"a-1": False, "a-2": True}, "the new process took over"
        spawn(guard, "b-1", peer.run())
        await asyncio.sleep(5.0)  # the old process can reach the API again from t=6
        await old.release()
        await asyncio.sleep(2.0)
        holding.append({i for i, v in leading.items() if v})
        await guard.close()
        await server.drain()

    run_sim(main)
    taken = min(w.at for w in server.writes if w.writer == "a-2")
    late = [w for w in server.writes if w.writer == "a-1" and w.at >= taken]
    assert late == [], f"the old process wrote its successor's Lease: {late}"
    assert overlaps == [], f"two holders: {overlaps}"
    assert holding == [{"a-2"}], f"the new process still holds it: {holding}"


class CountingApi(SimApi):
    """SimApi that records which calls this process made, in order."""

    def __init__(self, server: SimServer, node: str) -> None:
        super().__init__(server, node, f"{node}-1")
        self.ops: list[str] = []

    async def get(self, namespace: str, name: str, limit: float | None = None) -> LeaseRecord | None:
        self.ops.append("get")
        return await super().get(namespace, name, limit)

    async def create(self, body: dict[str, Any], limit: float | None = None) -> LeaseRecord:
        self.ops.append("create")
        return await super().create(body, limit)


async def _nothing() -> None:
    return None


async def test_a_fresh_elector_creates_the_lease_without_reading_it_first() -> None:
    """A new Service's unit: one round trip (create) before leading, not two (get, create)."""
    server = SimServer(random.Random(7))
    api = CountingApi(server, "a")
    e = LeaseElector(api, "ns", "kubevip-new", "a", Timings(), _nothing, _nothing, fresh=True)
    guard = TaskGroupGuard("test")
    spawn(guard, "a", e.run())
    try:
        await eventually(lambda: e.is_leader, "a leads", within=5.0)
        assert api.ops[:1] == ["create"] and "get" not in api.ops[: api.ops.index("create") + 1]
    finally:
        await guard.close()
        await server.drain()


async def test_a_fresh_elector_whose_lease_exists_reads_it_and_follows_the_holder() -> None:
    """The create is a compare-and-swap: a Lease already held (a restart, a Service re-created, a
    kube-vip peer first) makes it conflict, and the elector reads the Lease at once and follows."""
    server = SimServer(random.Random(8))
    b = LeaseElector(SimApi(server, "b", "b-1"), "ns", "kubevip-old", "b", Timings(), _nothing, _nothing)
    api = CountingApi(server, "a")
    a = LeaseElector(api, "ns", "kubevip-old", "a", Timings(), _nothing, _nothing, fresh=True)
    guard = TaskGroupGuard("test")
    spawn(guard, "b", b.run())
    try:
        await eventually(lambda: b.is_leader, "b leads", within=5.0)
        spawn(guard, "a", a.run())
        await eventually(lambda: a.leader == "b" and len(api.ops) >= 2, "a follows b", within=5.0)
        assert api.ops[:2] == ["create", "get"]
        assert not a.is_leader and b.is_leader
        lease = server.get("kubevip-old")
        assert lease is not None and lease.holder == "b"
    finally:
        await guard.close()
        await server.drain()


class LandsThenHangs(SimApi):
    """A write that the API server stores but whose answer is still on its way when the release comes."""

    def __init__(self, server: SimServer, node: str) -> None:
        super().__init__(server, node, f"{node}-1")
        self.hang = False
        self.landed = asyncio.Event()

    async def replace(self, body: dict[str, Any], limit: float | None = None) -> LeaseRecord:
        if not self.hang:
            return await super().replace(body, limit)
        self.server.replace(body, self.incarnation)  # stored at once ...
        self.landed.set()
        await asyncio.Event().wait()  # ... and answered never: the caller is cancelled first
        raise AssertionError("unreachable")

    async def create(self, body: dict[str, Any], limit: float | None = None) -> LeaseRecord:
        if not self.hang:
            return await super().create(body, limit)
        self.server.create(body, self.incarnation)
        self.landed.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_release_hands_back_an_acquire_it_cancelled_in_flight_that_landed() -> None:
    """A stopping agent's watch sees the holder's release and takes the Lease; its own release cancels
    that write, which had already landed: it must hand it back, not leave peers out until expiry (found
    by tests/e2e/test_quiet_restart.py: the Lease named an exited node)."""
    server = SimServer(random.Random(3))

    async def nothing() -> None:
        return None

    a = LeaseElector(SimApi(server, "a", "a-1"), "ns", "kubevip-web", "a", Timings(), nothing, nothing)
    b_api = LandsThenHangs(server, "b")
    b = LeaseElector(b_api, "ns", "kubevip-web", "b", Timings(), nothing, nothing)
    guard = TaskGroupGuard("test")
    spawn(guard, "a", a.run())
    await eventually(lambda: a.is_leader, "a leads", 5)
    spawn(guard, "b", b.run())
    try:
        await eventually(lambda: b.leader == "a", "b follows a", 5)
        b_api.hang = True
        await a.release()
        await bounded(b_api.landed.wait(), 5)
        lease = server.get("kubevip-web")
        assert lease is not None and lease.holder == "b", "b's acquire landed"
        b_api.hang = False  # the API answers again: only that one answer is lost
        await bounded(b.release(), 5)
        lease = server.get("kubevip-web")
        assert lease is not None and not lease.held, f"b's landed acquire was not handed back: {lease}"
    finally:
        await guard.close()
        await server.drain()
