"""The control-plane VIP over BGP: who announces (core/cpbgp.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kubevip.core.cpbgp import ECMP, SINGLE, CpFacts, announces, mode_for

facts = st.builds(CpFacts, mode=st.sampled_from([ECMP, SINGLE, "bogus"]), healthy=st.booleans(),
                  leading=st.booleans(), stopping=st.booleans())


@given(facts)
def test_never_without_a_healthy_local_api_server(f: CpFacts) -> None:
    if not f.healthy:
        assert not announces(f)


@given(facts)
def test_never_while_stopping(f: CpFacts) -> None:
    if f.stopping:
        assert not announces(f)


@given(facts)
def test_ecmp_ignores_the_lease(f: CpFacts) -> None:
    if f.mode == ECMP:
        assert announces(f) == (f.healthy and not f.stopping)


@given(facts)
def test_single_holder_needs_the_lease(f: CpFacts) -> None:
    if f.mode == SINGLE:
        assert announces(f) == (f.healthy and f.leading and not f.stopping)


@given(facts)
def test_unknown_mode_announces_nothing(f: CpFacts) -> None:
    if f.mode not in (ECMP, SINGLE):
        assert not announces(f)


def test_mode_follows_vip_leaderelection_as_in_kube_vip() -> None:
    assert mode_for(False) == ECMP
    assert mode_for(True) == SINGLE
