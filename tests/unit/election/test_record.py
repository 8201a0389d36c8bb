"""Lease bodies round-trip; the precise duration is trusted only next to the renewTime it was written with."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kubevip.election.cache import same_state
from kubevip.election.observe import Observation, expires_at, observe
from kubevip.election.record import DURATION_MS_ANNOTATION, lease_body, parse_lease


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
