"""Lease bodies round-trip; the precise duration is trusted only next to the renewTime it was written with."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.election.cache import same_state
from kubevip.election.observe import Observation, expires_at, observe
from kubevip.election.record import (
    DURATION_MS_ANNOTATION,
    lease_body,
    micro_time,
    parse_lease,
    released_body,
    renewed_body,
)


def _as_server(body: dict, rv: str = "7") -> dict:
    out = {**body, "metadata": {**body["metadata"], "resourceVersion": rv}}
    return out


@given(st.floats(0.05, 3600), st.integers(0, 10**6), st.floats(1e9, 2e9))
def test_round_trip(duration, transitions, wall):
    body = lease_body(
        "ns",
        "l",
        holder="node-a",
        duration=duration,
        transitions=transitions,
        acquire_wall=wall,
        renew_wall=wall,
    )
    rec = parse_lease(_as_server(body))
    assert rec.holder == "node-a" and rec.transitions == transitions and rec.resource_version == "7"
    assert rec.duration is not None and abs(rec.duration - max(0.001, round(duration * 1000) / 1000)) < 1e-9
    assert body["spec"]["leaseDurationSeconds"] >= duration


def test_foreign_writer_keeps_our_annotation_but_its_integer_duration_rules():
    body = lease_body("ns", "l", holder="a", duration=1.5, transitions=1, acquire_wall=1e9, renew_wall=1e9)
    body["spec"]["leaseDurationSeconds"] = 15
    body["spec"]["renewTime"] = "2030-01-01T00:00:00.000000Z"  # a client-go renewal
    rec = parse_lease(_as_server(body))
    assert rec.duration == 15.0
    assert DURATION_MS_ANNOTATION in rec.annotations


def test_released_lease_has_no_holder():
    body = lease_body("ns", "l", holder=None, duration=1, transitions=3, acquire_wall=None, renew_wall=1e9)
    rec = parse_lease(_as_server(body))
    assert not rec.held and rec.holder is None


def test_missing_fields_take_defaults():
    rec = parse_lease({"metadata": {"name": "x", "namespace": "y", "resourceVersion": "1"}})
    assert rec.holder is None and rec.duration is None and rec.transitions == 0


def test_observation_clock_restarts_only_on_a_new_version():
    o = observe(None, "1", now=10.0)
    assert observe(o, "1", now=20.0) == Observation("1", 10.0)
    assert observe(o, "2", now=20.0) == Observation("2", 20.0)
    assert observe(o, "1", now=20.0, not_before=15.0) == Observation("1", 15.0)
    assert expires_at(Observation("1", 10.0), 1.5) == 11.5


@given(
    holder=st.sampled_from([None, "node-a", "node-b"]),
    transitions=st.integers(0, 3),
    renew=st.floats(1.7e9, 1.8e9),
    rv=st.integers(1, 10**6),
)
def test_a_renewal_is_not_a_change_but_anything_else_is(holder, transitions, renew, rv) -> None:
    """same_state ignores what a renewal changes (version, renewTime, the precise-duration stamp)."""
    base = parse_lease(
        lease_body(
            "ns",
            "l",
            holder="node-a",
            duration=1.5,
            transitions=1,
            acquire_wall=1.7e9,
            renew_wall=1.7e9,
            resource_version="1",
        )
    )
    other = parse_lease(
        lease_body(
            "ns",
            "l",
            holder=holder,
            duration=1.5,
            transitions=transitions,
            acquire_wall=1.7e9,
            renew_wall=renew,
            resource_version=str(rv),
        )
    )
    assert same_state(base, other) == (holder == "node-a" and transitions == 1)


# --- exact bodies and records: what the API server receives and what we make of its answers ---------

WALL = 1_700_000_000.123456  # 2023-11-14T22:13:20.123456Z
STAMP = "2023-11-14T22:13:20.123456Z"


def test_micro_time_is_utc_with_microseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """UTC whatever the node's time zone: peers compare these stamps as text (the precise duration)."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        assert micro_time(WALL) == STAMP
    finally:
        monkeypatch.undo()
        time.tzset()
    assert micro_time(0.5) == "1970-01-01T00:00:00.500000Z"


def test_a_full_lease_body_is_exactly_the_lease_the_api_server_expects() -> None:
    body = lease_body(
        "kube-system", "plndr-svcs-lock", holder="node-a", duration=1.5, transitions=4,
        acquire_wall=WALL - 10, renew_wall=WALL, resource_version="99",
        labels={"kubevip.io/role": "claim"}, annotations={"kubevip.io/unit": "vip:192.0.2.1"},
    )
    assert body == {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": "plndr-svcs-lock",
            "namespace": "kube-system",
            "resourceVersion": "99",
            "labels": {"kubevip.io/role": "claim"},
            "annotations": {"kubevip.io/unit": "vip:192.0.2.1", DURATION_MS_ANNOTATION: f"1500 {STAMP}"},
        },
        "spec": {
            "holderIdentity": "node-a",
            "leaseDurationSeconds": 2,  # the integer field rounds up: a client-go peer waits longer
            "leaseTransitions": 4,
            "acquireTime": "2023-11-14T22:13:10.123456Z",
            "renewTime": STAMP,
        },
    }


def test_a_bare_lease_body_leaves_out_what_it_was_not_given() -> None:
    """No holder, acquireTime, labels or resourceVersion keys at all (a create; a release)."""
    body = lease_body("ns", "l", holder=None, duration=0.0001, transitions=0, acquire_wall=None,
                      renew_wall=WALL)
    assert body["metadata"] == {
        "name": "l", "namespace": "ns", "annotations": {DURATION_MS_ANNOTATION: f"1 {STAMP}"},
    }
    assert body["spec"] == {"leaseDurationSeconds": 1, "leaseTransitions": 0, "renewTime": STAMP}
    assert lease_body("ns", "l", holder="", duration=3.0, transitions=0, acquire_wall=None,
                      renew_wall=WALL, resource_version="", labels={})["metadata"].keys() == {
        "name", "namespace", "annotations"}
    assert lease_body("ns", "l", holder="a", duration=3.0, transitions=0, acquire_wall=None,
                      renew_wall=WALL)["spec"]["leaseDurationSeconds"] == 3


def test_lease_body_does_not_change_the_callers_dicts() -> None:
    labels, annotations = {"a": "1"}, {"b": "2"}
    body = lease_body("ns", "l", holder="a", duration=1, transitions=0, acquire_wall=None, renew_wall=WALL,
                      labels=labels, annotations=annotations)
    body["metadata"]["labels"]["x"] = "y"
    assert labels == {"a": "1"} and annotations == {"b": "2"}


def test_parse_lease_reads_every_field() -> None:
    obj = {
        "metadata": {"name": "l", "namespace": "ns", "resourceVersion": "12",
                     "labels": {"r": "node"}, "annotations": {"u": "x"}},
        "spec": {"holderIdentity": "node-b", "leaseDurationSeconds": 15, "leaseTransitions": 6,
                 "acquireTime": "A", "renewTime": "R"},
    }
    rec = parse_lease(obj)
    assert (rec.namespace, rec.name, rec.resource_version, rec.holder, rec.duration, rec.transitions,
            rec.acquire_time, rec.renew_time, rec.labels, rec.annotations) == (
        "ns", "l", "12", "node-b", 15.0, 6, "A", "R", {"r": "node"}, {"u": "x"})
    assert isinstance(rec.duration, float)


def test_parse_lease_of_an_empty_object_takes_every_default() -> None:
    for obj in ({}, {"metadata": None, "spec": None},
                {"metadata": {"labels": None, "annotations": None},
                 "spec": {"holderIdentity": "", "leaseTransitions": None}}):
        rec = parse_lease(obj)
        assert (rec.namespace, rec.name, rec.resource_version, rec.holder, rec.duration, rec.transitions,
                rec.acquire_time, rec.renew_time, rec.labels, rec.annotations) == (
            "", "", "", None, None, 0, None, None, {}, {})


def test_only_a_positive_integer_lease_duration_counts() -> None:
    for seconds, want in ((1, 1.0), (0, None), (-5, None), (1.5, None), ("15", None), (None, None)):
        assert parse_lease({"spec": {"leaseDurationSeconds": seconds}}).duration == want, seconds


def test_the_precise_duration_needs_positive_milliseconds_and_the_current_renew_time() -> None:
    def duration(ann: str, renew: str | None = STAMP, seconds: int = 15) -> float | None:
        spec = {"leaseDurationSeconds": seconds, "renewTime": renew}
        meta = {"annotations": {DURATION_MS_ANNOTATION: ann}}
        return parse_lease({"metadata": meta, "spec": spec}).duration

    assert duration(f"1500 {STAMP}") == 1.5
    assert duration(f"1500 {STAMP}", seconds=0) == 1.5  # the precise value needs no integer field
    assert duration(f"1 {STAMP}") == 0.001
    assert duration(f"0 {STAMP}") == 15.0
    assert duration(f"-1500 {STAMP}") == 15.0
    assert duration(f"1.5 {STAMP}") == 15.0
    assert duration(f"x {STAMP}") == 15.0
    assert duration(f"1500 {STAMP}", renew="2030-01-01T00:00:00.000000Z") == 15.0
    assert duration(f"1500 {STAMP}", renew=None) == 15.0
    assert duration("1500") == 15.0
    assert duration(f"1500  {STAMP}") == 15.0  # exactly one space, as lease_body writes it


def test_released_and_renewed_bodies_keep_what_they_must() -> None:
    rec = parse_lease(lease_body(
        "ns", "l", holder="node-a", duration=1.5, transitions=4, acquire_wall=WALL - 10, renew_wall=WALL - 1,
        resource_version="99", labels={"kubevip.io/role": "claim"}, annotations={"kubevip.io/unit": "u"},
    ))
    released = released_body(rec, WALL)
    assert released == lease_body(
        "ns", "l", holder=None, duration=1.0, transitions=4, acquire_wall=None, renew_wall=WALL,
        resource_version="99", labels={"kubevip.io/role": "claim"},
        annotations={"kubevip.io/unit": "u", DURATION_MS_ANNOTATION: f"1500 {micro_time(WALL - 1)}"},
    )
    assert released["metadata"]["annotations"][DURATION_MS_ANNOTATION] == f"1000 {STAMP}"
    assert released_body(rec, WALL, {"x": "y"})["metadata"]["annotations"] == {
        "x": "y", DURATION_MS_ANNOTATION: f"1000 {STAMP}"}

    renewed = renewed_body(rec, 2.5, WALL)
    assert renewed == {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": "l", "namespace": "ns", "resourceVersion": "99",
            "labels": {"kubevip.io/role": "claim"},
            "annotations": {"kubevip.io/unit": "u", DURATION_MS_ANNOTATION: f"2500 {STAMP}"},
        },
        "spec": {
            "holderIdentity": "node-a", "leaseDurationSeconds": 3, "leaseTransitions": 4,
            # lease mode recognises its own landed write by holder and acquireTime: it must stay
            "acquireTime": "2023-11-14T22:13:10.123456Z", "renewTime": STAMP,
        },
    }
    no_acquire = parse_lease({**lease_body("ns", "l", holder="a", duration=1, transitions=0,
                                           acquire_wall=None, renew_wall=WALL, resource_version="5")})
    assert "acquireTime" not in renewed_body(no_acquire, 1.0, WALL)["spec"]
