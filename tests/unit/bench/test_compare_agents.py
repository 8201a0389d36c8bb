"""The agents' environment in the side-by-side run: whole seconds as kube-vip parses them, kubevip's
fractional defaults as it parses them."""

from __future__ import annotations

from compare.agents import KUBE_VIP, KUBEVIP, NodeSpot, Settings, agent_env, seconds_text
from hypothesis import given
from hypothesis import strategies as st

NODE = NodeSpot(name="node1", netns="n1", interface="eth0")


@given(st.integers(min_value=1, max_value=3600))
def test_whole_seconds_are_integers(n: int) -> None:
    # kube-vip's environment parser refuses "5.0"
    assert seconds_text(n) == str(n)
    assert seconds_text(float(n)) == str(n)


@given(st.floats(min_value=0.01, max_value=3600, allow_nan=False).filter(lambda x: not x.is_integer()))
def test_fractions_round_trip(x: float) -> None:
    assert float(seconds_text(x)) == x


def test_each_agent_gets_its_own_timings() -> None:
    ours = Settings(lease_duration_s=1.5, renew_deadline_s=1.0, retry_period_s=0.25)
    assert timings(agent_env(KUBEVIP, ours, NODE, "/k")) == ("1.5", "1", "0.25")
    assert timings(agent_env(KUBE_VIP, Settings(), NODE, "/k")) == ("5", "3", "1")


def timings(env: dict[str, str]) -> tuple[str, str, str]:
    return env["vip_leaseduration"], env["vip_renewdeadline"], env["vip_retryperiod"]
