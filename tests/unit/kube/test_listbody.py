"""kube/listbody.py: a list answer decoded item by item gives what json.loads gives, refuses what it
refuses, and never holds more than one item's objects at a time."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubevip.kube.listbody import ListBody
from kubevip.kube.watch import Listed

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
objects = st.dictionaries(st.text(max_size=6), values, max_size=4)
spaces = st.sampled_from(["", " ", "\n", "\t ", "\r\n  "])


def _walk(body: ListBody) -> list[dict[str, Any]]:
    return list(body)


def _expected(doc: dict[str, Any]) -> list[dict[str, Any]]:
    kind = str(doc.get("kind", "")).removesuffix("List")
    return [{**i, "kind": i.get("kind", kind)} if kind else i for i in doc.get("items") or []]


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["ServiceList", "EndpointSliceList", ""]),
    meta=st.dictionaries(st.sampled_from(["resourceVersion", "continue", "x"]), st.text(max_size=5)),
    items=st.lists(objects, max_size=5),
    extra=st.dictionaries(st.sampled_from(["apiVersion", "z", "other"]), values, max_size=2),
    items_first=st.booleans(),
    indent=st.sampled_from([None, 0, 2]),
    space=spaces,
)
def test_the_same_head_and_items_as_json_loads(
    kind: str, meta: dict[str, str], items: list[dict[str, Any]], extra: dict[str, Any],
    items_first: bool, indent: int | None, space: str,
) -> None:
    """Any key order, any whitespace, keys after the items, the metadata after them too."""
    head: dict[str, Any] = {"kind": kind, "metadata": meta} if kind else {"metadata": meta}
    doc = {"items": items, **head, **extra} if items_first else {**head, "items": items, **extra}
    text = space + json.dumps(doc, indent=indent) + space
    body = ListBody(text.encode())
    assert body.metadata == meta
    assert _walk(body) == _expected(doc)
    assert body.head == {k: v for k, v in doc.items() if k != "items"}


@settings(max_examples=200, deadline=None)
@given(items=st.lists(objects, min_size=1, max_size=4), cut=st.integers(min_value=1))
def test_a_cut_or_broken_document_raises_like_json_loads(items: list[dict[str, Any]], cut: int) -> None:
    """Every prefix json.loads refuses (an answer cut short) fails here too: when the page is read or
    while its items are walked, never silently short."""
    text = json.dumps({"kind": "ServiceList", "metadata": {"resourceVersion": "1"}, "items": items, "t": 1})
    broken = text[: cut % len(text)]
    with pytest.raises(ValueError):
        json.loads(broken)
    with pytest.raises(ValueError):
        _walk(ListBody(broken))


@pytest.mark.parametrize("text", [
    '[{"a": 1}]',
    '{"metadata": {}, "kind": "L", "items": [{"a": 1}] "x": 1}',
    '{"metadata": {}, "kind": "L", "items": [{"a": 1}} ',
    '{"metadata": {}, "kind": "L", "items": [{"a": 1}]} trailing',
    '{"metadata": {}, "kind": "L", "items": {"a": 1}}',
    '{"metadata": {}, "kind": "L", "items": [1]}',
    '{"metadata": {}, "kind": "L", 5: []}',
    '{"metadata": {} "kind": "L"}',
    '{"items": {"a": 1}}',
])
def test_what_is_not_a_list_answer_raises(text: str) -> None:
    with pytest.raises(ValueError):
        _walk(ListBody(text))


def test_null_items_and_an_empty_object_have_no_items() -> None:
    assert _walk(ListBody('{"kind": "L", "metadata": {"resourceVersion": "3"}, "items": null}')) == []
    assert _walk(ListBody(b" {} ")) == []


def test_walked_once_only() -> None:
    """The text goes after the first walk; a second one is a consumer's bug, not an empty list."""
    body = ListBody(b'{"kind": "L", "metadata": {}, "items": [{"a": 1}]}')
    assert _walk(body) == [{"a": 1, "kind": "L"}]
    with pytest.raises(RuntimeError, match="once"):
        _walk(body)
    listed = Listed([ListBody(b'{"kind": "L", "metadata": {}, "items": [{"a": 1}]}'),
                     ListBody(b'{"kind": "L", "metadata": {}, "items": [{"b": 2}]}')])
    assert [sorted(o) for o in listed] == [["a", "kind"], ["b", "kind"]]
    assert listed.count == 2
    with pytest.raises(RuntimeError, match="once"):
        list(listed)


def test_the_error_names_a_position_never_the_content() -> None:
    """A Secret's data in a broken answer must not reach the log through the error's text."""
    text = '{"kind": "SecretList", "metadata": {}, "items": [{"data": {"password": "s3cr3t-pw"}} oops]}'
    with pytest.raises(ValueError) as info:
        _walk(ListBody(text))
    assert "s3cr3t" not in str(info.value)
    assert "char" in str(info.value)


def _service(i: int) -> dict[str, Any]:
    return {
        "metadata": {"name": f"s{i}", "namespace": "n", "uid": f"u-{i:06d}", "resourceVersion": str(i),
                     "annotations": {"kube-vip.io/loadbalancerIPs": f"10.0.{i // 250}.{i % 250}"},
                     "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {"f:ports": {f"k{i}": {}}}}}]},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}],
                 "selector": {"a": f"s{i}"}},
    }


def test_one_item_at_a_time() -> None:
    """The point of it: walking 2000 items never holds much more than one item's objects (json.loads
    builds all of them at once, which is what fragmented the agents' heaps at 1000 Services)."""
    text = json.dumps({"kind": "ServiceList", "metadata": {"resourceVersion": "9"},
                       "items": [_service(i) for i in range(2000)]}).encode()

    def peak(walk: Any) -> int:
        tracemalloc.start()
        try:
            walk()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    def whole() -> None:
        for _ in json.loads(text)["items"]:
            pass

    def lazy() -> None:
        for _ in ListBody(text):
            pass

    whole_peak, lazy_peak = peak(whole), peak(lazy)
    # Both hold the text (~0.6 MB); the whole decode also every item's dicts and strings (~4 MB).
    assert lazy_peak < 2 * len(text) < whole_peak, (lazy_peak, len(text), whole_peak)
