"""Label selectors in Kubernetes string syntax (equality- and set-based), against Kubernetes' semantics."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.core import labelselector as ls
from kubevip.errors import InputError

KEYS = st.sampled_from(["rack", "zone", "kubernetes.io/role", "a.b/c-d", "x"])
VALUES = st.sampled_from(["a", "b", "r1", "edge-1", "v.2"])
LABELS = st.dictionaries(KEYS, VALUES, max_size=4)


@pytest.mark.parametrize(
    ("text", "labels", "want"),
    [
        ("", {}, True),
        ("rack", {"rack": "a"}, True),
        ("rack", {}, False),
        ("!rack", {}, True),
        ("!rack", {"rack": "a"}, False),
        ("rack=a", {"rack": "a"}, True),
        ("rack==a", {"rack": "b"}, False),
        ("rack!=a", {}, True),  # Kubernetes: != matches an absent key
        ("rack!=a", {"rack": "a"}, False),
        ("rack in (a, b)", {"rack": "b"}, True),
        ("rack in (a,b)", {}, False),
        ("rack notin (a,b)", {}, True),
        ("rack notin (a,b)", {"rack": "a"}, False),
        ("rack in (a),zone=x , !edge", {"rack": "a", "zone": "x"}, True),
        ("rack in (a),zone=x,!edge", {"rack": "a", "zone": "x", "edge": ""}, False),
        ("kubernetes.io/role=lb", {"kubernetes.io/role": "lb"}, True),
        ("rack=", {"rack": ""}, True),
    ],
)
def test_matches_like_kubernetes(text: str, labels: dict[str, str], want: bool) -> None:
    assert ls.parse(text).matches(labels) is want


@pytest.mark.parametrize(
    "text",
    ["rack in ()", "rack in (a", "rack in a)", "=a", "rack=a=b", "!rack=a", "ra ck", "rack>1", "-bad=a",
     "rack=a b", ",", "rack,", "x" * 64, "rack=" + "v" * 64],
)
def test_bad_selectors_name_the_part(text: str) -> None:
    with pytest.raises(InputError) as err:
        ls.parse(text)
    assert str(err.value)


@given(st.lists(st.tuples(KEYS, st.sampled_from(["=", "!=", "in", "notin", "exists", "!"]),
                          st.frozensets(VALUES, min_size=1, max_size=3)), max_size=4), LABELS)
def test_round_trip_and_conjunction(
    reqs: list[tuple[str, str, frozenset[str]]], labels: dict[str, str]
) -> None:
    """str(selector) parses back to the same selector, and a selector matches exactly when every one of
    its requirements does (failing() lists the others)."""
    built = []
    for key, op, vals in reqs:
        if op in ("=", "!="):
            vals = frozenset(sorted(vals)[:1])
        elif op in ("exists", "!"):
            vals = frozenset()
        built.append(ls.Requirement(key, op, vals))
    sel = ls.Selector(tuple(built))
    again = ls.parse(str(sel))
    assert again == sel
    assert sel.matches(labels) == all(r.matches(labels) for r in built)
    assert sel.matches(labels) == (not sel.failing(labels))
    for r in built:
        if r.op in ("!=", "notin", "!"):
            # negative requirements are exact complements of the positive ones
            pos = {"!=": "=", "notin": "in", "!": "exists"}[r.op]
            assert r.matches(labels) != ls.Requirement(r.key, pos, r.values).matches(labels)
