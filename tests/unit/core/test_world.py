"""same_decision_inputs: the agents' own write-backs never cost a pass; any other edit does."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from kubevip.core.parse import service_from_dict
from kubevip.core.world import same_decision_inputs
from kubevip.kube.writers import ANNOTATION_VIP_HOST
from tests.unit.objects import service

BACK = frozenset({ANNOTATION_VIP_HOST})
BASE = service_from_dict(service("web", "192.0.2.10"))
texts = st.text("abcdefgh0123", min_size=1, max_size=6)


@given(host=texts, rv=texts, ingress=st.lists(st.sampled_from(["192.0.2.10", "2001:db8::1"]), max_size=2))
def test_write_backs_are_not_decision_inputs(host: str, rv: str, ingress: list[str]) -> None:
    after = dataclasses.replace(
        BASE,
        resource_version=rv,
        status_ingress=tuple(ingress),
        annotations=(*BASE.annotations, (ANNOTATION_VIP_HOST, host)),
    )
    assert same_decision_inputs(BASE, after, BACK)
    assert same_decision_inputs(after, BASE, BACK)


@given(key=texts, value=texts, policy=st.sampled_from(["Cluster", "Local"]))
def test_any_other_edit_is(key: str, value: str, policy: str) -> None:
    annotated = dataclasses.replace(BASE, annotations=(*BASE.annotations, (f"kube-vip.io/{key}", value)))
    assert not same_decision_inputs(BASE, annotated, BACK)
    moved = dataclasses.replace(BASE, external_traffic_policy=policy)
    assert same_decision_inputs(BASE, moved, BACK) == (policy == BASE.external_traffic_policy)
