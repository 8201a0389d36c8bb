"""Handing a Lease back, and recognising our own write that landed without an answer (handback.py).

A scripted Lease API (pure unit test): each replace either succeeds or raises Conflict, each get answers
the next scripted record; every call and its time limit are recorded.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from kubevip.election.handback import hand_back, still_ours
from kubevip.election.leaseapi import Conflict, LeaseApi
from kubevip.election.record import LeaseRecord, parse_lease

ACQUIRED = "2026-12-04T10:00:00.000000Z"


def rec(rv: str, holder: str | None = "me", acquire: str | None = ACQUIRED) -> LeaseRecord:
    return LeaseRecord("ns", "lease", rv, holder, 10.0, 3, acquire, ACQUIRED, {"l": "v"}, {"a": "b"})


class ScriptedApi(LeaseApi):
    def __init__(self, replaces: list[bool], gets: list[LeaseRecord | None]) -> None:  # no RestClient
        self.request_timeout = 1.0
        self.replaces = list(replaces)  # True: accepted, False: Conflict
        self.gets = list(gets)
        self.calls: list[tuple[str, Any, float | None]] = []

    async def get(self, namespace: str, name: str, limit: float | None = None) -> LeaseRecord | None:
        self.calls.append(("get", (namespace, name), limit))
        return self.gets.pop(0)

    async def replace(self, body: dict[str, Any], limit: float | None = None) -> LeaseRecord:
        self.calls.append(("replace", body, limit))
        if not self.replaces.pop(0):
            raise Conflict(409, "update lease ns/lease")
        return parse_lease(body)

    def replaced_versions(self) -> list[str]:
        return [c[1]["metadata"]["resourceVersion"] for c in self.calls if c[0] == "replace"]


def released(body: dict[str, Any]) -> bool:
    return "holderIdentity" not in body["spec"] and "acquireTime" not in body["spec"]


async def test_a_release_clears_the_holder_of_that_version_within_the_limit() -> None:
    api = ScriptedApi([True], [])
    before = time.time()
    assert await hand_back(api, rec("7"), "me", 0.5) is True
    [(kind, body, limit)] = api.calls
    assert (kind, limit) == ("replace", 0.5)
    assert body["metadata"]["resourceVersion"] == "7", "guarded by the version we hold (CAS)"
    assert released(body)
    assert body["spec"]["leaseTransitions"] == 3
    renewed = parse_lease(body).renew_time
    assert renewed is not None and renewed >= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(before - 1))


async def test_a_conflict_with_our_own_landed_write_releases_the_newer_version() -> None:
    api = ScriptedApi([False, True], [rec("8")])
    assert await hand_back(api, rec("7"), "me", 0.5) is True
    assert [c[0] for c in api.calls] == ["replace", "get", "replace"]
    assert api.calls[1] == ("get", ("ns", "lease"), 0.5)
    assert api.calls[2][2] == 0.5
    assert api.replaced_versions() == ["7", "8"], "the second release is of the version that is ours"
    assert released(api.calls[2][1])


@pytest.mark.parametrize(
    "current",
    [None, rec("8", holder="other"), rec("8", holder=None), rec("8", acquire="2026-12-04T10:00:05.000000Z")],
    ids=["deleted", "another-holder", "released", "re-acquired-since"],
)
async def test_a_conflict_with_a_lease_no_longer_ours_releases_nothing(current: LeaseRecord | None) -> None:
    api = ScriptedApi([False], [current])
    assert await hand_back(api, rec("7"), "me", 0.5) is False
    assert [c[0] for c in api.calls] == ["replace", "get"], "never writes a Lease that is not ours"


async def test_a_second_conflict_gives_up_after_one_re_read() -> None:
    api = ScriptedApi([False, False, True], [rec("8"), rec("9")])
    assert await hand_back(api, rec("7"), "me", 0.5) is False
    assert [c[0] for c in api.calls] == ["replace", "get", "replace"]
    assert api.replaced_versions() == ["7", "8"]


async def test_still_ours_is_the_current_version_only_with_our_holder_and_acquire_time() -> None:
    mine = rec("7")
    for current, expected in [
        (rec("9"), rec("9")),
        (None, None),
        (rec("9", holder="other"), None),
        (rec("9", holder=None), None),
        (rec("9", acquire=None), None),
        (rec("9", acquire="2026-12-04T10:00:05.000000Z"), None),
    ]:
        api = ScriptedApi([], [current])
        got = await still_ours(api, mine, "me", 0.25)
        assert got == expected, (current, got)
        if got is not None:
            assert got.resource_version == "9"
        assert api.calls == [("get", ("ns", "lease"), 0.25)]
