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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rack in (a", "unbalanced '(' in 'rack in (a'"),
        ("rack in a)", "unbalanced ')' in 'rack in a)'"),
        ("ra ck",
         "'ra ck' is not a label requirement (key, !key, key=v, key!=v, key in (a,b), key notin (a,b))"),
        ("!rack=a", "'!rack=a': '!' only negates a bare key"),
        ("rack in ()", "'rack in ()': a set needs at least one value"),
        ("-bad=a", "'-bad=a': '-bad' is not a valid label key"),
        ("rack=a_", "'rack=a_': 'a_' is not a valid label value"),
        ("rack in (a,b_)", "'rack in (a,b_)': 'b_' is not a valid label value"),
        ("x" * 4097, "selector of 4097 characters is too long (at most 4096)"),
    ],
)
def test_each_refusal_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        ls.parse(text)
    assert str(err.value) == message


def test_label_keys_are_bounded_as_kubernetes_bounds_them() -> None:
    """A prefix of at most 253 characters (a DNS subdomain) and a name of at most 63, each on its own:
    a key Kubernetes accepts is never refused, and one it refuses is never read."""
    prefix = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters
    assert len(prefix) == 253
    for key in (f"{prefix}/{'n' * 63}", "n" * 63, f"{prefix[2:]}/{'n' * 63}"):
        assert ls.parse(f"{key}=v").matches({key: "v"})
    for key in (f"{prefix}c/n", "n" * 64, f"x/{'n' * 64}"):
        with pytest.raises(InputError, match="is not a valid label key"):
            ls.parse(f"{key}=v")


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


def test_a_selector_of_exactly_the_limit_is_read() -> None:
    text = "kk=v," + ",".join(["k=v"] * 1023)
    assert len(text) == 4096
    assert ls.parse(text).matches({"kk": "v", "k": "v"})
