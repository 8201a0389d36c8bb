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


def _cfg(env: dict[str, str], tmp_path, sa: str | None = None):  # type: ignore[no-untyped-def]
    f = tmp_path / "namespace"
    if sa is not None:
        f.write_text(sa + "\n")
    return config_from_settings(Settings(env), f)


def test_global_leases_live_in_the_pods_namespace_like_kube_vip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Outside a Pod (static Pod): cp_namespace, else kube-system.
    c = _cfg({}, tmp_path)
    assert (c.cp_lease_namespace, c.lease_name) == ("kube-system", "plndr-cp-lock")
    assert (c.services_lease_namespace, c.services_lease_name) == ("kube-system", "plndr-svcs-lock")
    assert _cfg({"cp_namespace": "vip"}, tmp_path).namespace == "vip"
    # In a Pod: its service-account namespace wins over cp_namespace (kube-vip's pkg/lease).
    c = _cfg({"cp_namespace": "vip"}, tmp_path, sa="kube-vip")
    assert c.cp_lease_namespace == c.services_lease_namespace == "kube-vip"
    # kubevip's older vip_leasenamespace still wins when set (existing installs keep their Leases).
    assert _cfg({"vip_leasenamespace": "mine"}, tmp_path, sa="kube-vip").namespace == "mine"


def test_lease_names_from_settings_with_kube_vips_ns_form(tmp_path) -> None:  # type: ignore[no-untyped-def]
    c = _cfg({"vip_leasename": "infra/cp", "svc_leasename": "svcs"}, tmp_path, sa="kube-vip")
    assert (c.cp_lease_namespace, c.lease_name) == ("infra", "cp")
    assert (c.services_lease_namespace, c.services_lease_name) == ("kube-vip", "svcs")
    with pytest.raises(ConfigError) as e:
        _cfg({"svc_leasename": "Bad_Name"}, tmp_path)
    assert "svc_leasename" in str(e.value) and "Bad_Name" in str(e.value)
    with pytest.raises(ConfigError):
        _cfg({"vip_leasename": "a/b/c"}, tmp_path)


def test_liveness_period_defaults_to_the_retry_period():
    t = config_from_settings(Settings({})).timings
    assert t.liveness is None and t.liveness_period == t.retry_period
    t = config_from_settings(Settings({"vip_livenessperiod": "0.6"})).timings
    assert t.liveness_period == 0.6


@pytest.mark.parametrize("value", ["abc", "-1", "0", "nan"])
def test_bad_liveness_period_names_the_variable(value):
    with pytest.raises(ConfigError) as err:
        config_from_settings(Settings({"vip_livenessperiod": value}))
    assert err.value.name == "vip_livenessperiod" and value in str(err.value)


def test_liveness_period_must_leave_a_retry_before_the_deadline():
    # 0.8 + 0.25 >= 1.0: one failed renewal would fence the node before it could try again.
    with pytest.raises(ConfigError) as err:
        config_from_settings(Settings({"vip_livenessperiod": "0.8"}))
    assert err.value.name == "vip_livenessperiod"
    assert "vip_retryperiod" in str(err.value) and "vip_renewdeadline" in str(err.value)
    ok = config_from_settings(Settings({"vip_leaseduration": "15", "vip_renewdeadline": "10",
                                        "vip_retryperiod": "2", "vip_livenessperiod": "7.5"}))
    assert ok.timings.liveness_period == 7.5


@pytest.mark.parametrize(
    "env,name,value,allowed",
    [
        ({"vip_leaseduration": "abc"}, "vip_leaseduration", "abc", "expected seconds, e.g. 2 or 0.5"),
        ({"vip_retryperiod": "-1"}, "vip_retryperiod", "-1", "expected a positive number of seconds"),
        ({"vip_leaseskewmargin": "abc"}, "vip_leaseskewmargin", "abc", "expected seconds >= 0, e.g. 0.25"),
        ({"vip_leaseskewmargin": "-1"}, "vip_leaseskewmargin", "-1", "expected seconds >= 0, e.g. 0.25"),
        ({"vip_leaseskewmargin": "inf"}, "vip_leaseskewmargin", "inf", "expected seconds >= 0, e.g. 0.25"),
        ({"svc_leasename": "a/b/c"}, "svc_leasename", "a/b/c", "not a Lease name"),
    ],
)
def test_each_bad_setting_names_its_variable_value_and_what_is_allowed(
    env: dict[str, str], name: str, value: str, allowed: str
) -> None:
    """Found by mutation testing: the field, the value or the text of these errors could go missing."""
    with pytest.raises(ConfigError) as err:
        config_from_settings(Settings(env))
    assert (err.value.name, err.value.value) == (name, value)
    assert err.value.allowed.startswith(allowed)


def test_an_empty_or_zero_setting_takes_its_default_or_is_accepted() -> None:
    c = config_from_settings(Settings({"vip_leaseskewmargin": "0", "vip_leaseduration": " ",
                                       "vip_livenessperiod": "", "svc_leasename": ""}))
    assert c.timings == Timings(skew_margin=0.0)  # a zero margin is allowed; blanks are unset
    assert c.services_lease_name == "plndr-svcs-lock" and c.services_namespace == "kube-system"
    assert c.enabled is False and c.per_service is False
    c = config_from_settings(Settings({"vip_leaseskewmargin": " "}))
    assert c.timings.skew_margin == Timings().skew_margin


_POSITIVE = "expected a positive number of seconds"


@pytest.mark.parametrize(
    ("timings", "text"),
    [
        (Timings(lease_duration=0.0), f"vip_leaseduration=0.0: {_POSITIVE}"),
        (Timings(lease_duration=float("inf")), f"vip_leaseduration=inf: {_POSITIVE}"),
        (Timings(renew_deadline=0.0), f"vip_renewdeadline=0.0: {_POSITIVE}"),
        (Timings(renew_deadline=float("-inf")), f"vip_renewdeadline=-inf: {_POSITIVE}"),
        (Timings(retry_period=0.0), f"vip_retryperiod=0.0: {_POSITIVE}"),
        (Timings(retry_period=float("inf")), f"vip_retryperiod=inf: {_POSITIVE}"),
        (Timings(skew_margin=-0.1), "vip_leaseskewmargin=-0.1: expected seconds >= 0"),
        (Timings(skew_margin=float("inf")), "vip_leaseskewmargin=inf: expected seconds >= 0"),
        (Timings(lease_duration=1.25), "vip_renewdeadline=1.0: vip_renewdeadline (1.0) + vip_leaseskewmargin"
         " (0.25) must be less than vip_leaseduration (1.25): a leader must stop announcing before its Lease"
         " can expire for a peer; lower vip_renewdeadline or raise vip_leaseduration"),
        (Timings(retry_period=1.0), "vip_retryperiod=1.0: must be less than vip_renewdeadline (1.0) so a"
         " leader gets at least two renewal attempts before it fences itself"),
        (Timings(liveness=0.0), f"vip_livenessperiod=0.0: {_POSITIVE}"),
        (Timings(liveness=float("inf")), f"vip_livenessperiod=inf: {_POSITIVE}"),
        (Timings(liveness=0.75), "vip_livenessperiod=0.75: vip_livenessperiod (0.75) + vip_retryperiod (0.25)"
         " must be less than vip_renewdeadline (1.0): a failed liveness renewal needs a retry before the node"
         " fences itself; lower vip_livenessperiod or raise vip_renewdeadline (and vip_leaseduration)"),
    ],
)
def test_validate_names_the_setting_its_value_and_the_rule(timings: Timings, text: str) -> None:
    """Timings built by hand (the election CLI, tests) get the same clear message as the environment's."""
    with pytest.raises(ConfigError) as err:
        timings.validate()
    assert str(err.value) == text
    assert err.value.name == text.split("=", 1)[0]
