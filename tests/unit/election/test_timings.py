"""Election settings: kube-vip's integer seconds parse, fractions allow fast failover, fencing invariant."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.election.timings import CONTROL_PLANE_LEASE, Timings, config_from_settings, service_lease_name
from kubevip.envparse import Settings
from kubevip.errors import ConfigError


def test_defaults_hold_the_fencing_invariant():
    t = Timings().validate()
    assert t.renew_deadline + t.skew_margin < t.lease_duration
    assert t.duration_seconds_field == 2


def test_kube_vip_integer_seconds_parse():
    cfg = config_from_settings(
        Settings(
            {
                "vip_leaseduration": "15",
                "vip_renewdeadline": "10",
                "vip_retryperiod": "2",
                "vip_leaderelection": "true",
            }
        )
    )
    assert (cfg.timings.lease_duration, cfg.timings.renew_deadline, cfg.timings.retry_period) == (15, 10, 2)
    assert cfg.enabled and cfg.lease_name == CONTROL_PLANE_LEASE and cfg.namespace == "kube-system"
    assert cfg.mode == "lease" and not cfg.per_service


def test_fractional_seconds_and_scalable_mode():
    cfg = config_from_settings(
        Settings(
            {
                "vip_leaseduration": "1.2",
                "vip_renewdeadline": "0.8",
                "vip_retryperiod": "0.2",
                "vip_leaseskewmargin": "0.2",
                "vip_electionmode": "scalable",
                "svc_election": "true",
                "vip_leasename": "my-lock",
            }
        )
    )
    assert cfg.timings == Timings(1.2, 0.8, 0.2, 0.2)
    assert cfg.mode == "scalable" and cfg.per_service and cfg.lease_name == "my-lock"


def test_invariant_violation_names_the_variables():
    with pytest.raises(ConfigError) as err:
        config_from_settings(Settings({"vip_leaseduration": "5", "vip_renewdeadline": "5"}))
    msg = str(err.value)
    assert "vip_renewdeadline" in msg and "vip_leaseduration" in msg and "vip_leaseskewmargin" in msg


@pytest.mark.parametrize("name", ["vip_leaseduration", "vip_renewdeadline", "vip_retryperiod"])
@pytest.mark.parametrize("value", ["abc", "-1", "0", "nan", "inf"])
def test_bad_seconds_name_the_variable(name, value):
    with pytest.raises(ConfigError) as err:
        config_from_settings(Settings({name: value}))
    assert err.value.name == name


def test_retry_must_leave_room_for_two_attempts():
    with pytest.raises(ConfigError) as err:
        Timings(lease_duration=3, renew_deadline=1, retry_period=1, skew_margin=0.5).validate()
    assert err.value.name == "vip_retryperiod"


@given(st.floats(0.01, 100), st.floats(0.01, 100), st.floats(0.001, 10), st.floats(0, 10))
def test_validate_accepts_exactly_the_safe_timings(ld, rd, rp, margin):
    t = Timings(ld, rd, rp, margin)
    safe = rd + margin < ld and rp < rd
    if safe:
        assert t.validate() is t
        assert t.duration_seconds_field >= ld
    else:
        with pytest.raises(ConfigError):
            t.validate()


def test_service_lease_name_is_kube_vips():
    assert service_lease_name("nginx") == "kubevip-nginx"
