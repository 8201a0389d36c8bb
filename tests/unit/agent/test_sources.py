"""agent/sources.py: a list replaces the world's Services only once every item of it was decoded."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubevip.agent.sources import Sources
from kubevip.core.world import World
from kubevip.kube.listbody import ListBody
from kubevip.metrics import Metrics


def _service(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "n", "uid": f"u-{name}", "resourceVersion": "1",
                     "annotations": {"kube-vip.io/loadbalancerIPs": "10.0.0.1"}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
    }


def _sources() -> tuple[Sources, list[set[str]]]:
    touched: list[set[str]] = []
    src = Sources(None, World(), "", False, touched.append, Metrics("n1"),  # type: ignore[arg-type]
                  lambda kind, key, err: None)
    return src, touched


def _body(*names: str) -> str:
    return json.dumps({"kind": "ServiceList", "metadata": {"resourceVersion": "5"},
                       "items": [_service(n) for n in names]})


def test_a_list_replaces_the_services() -> None:
    src, touched = _sources()
    replace = src.reflectors[0]._on_replace
    replace(ListBody(_body("a", "b")))
    assert sorted(src.world.services) == ["n/a", "n/b"]
    replace(ListBody(_body("b", "c")))
    assert sorted(src.world.services) == ["n/b", "n/c"]
    assert touched[-1] == {"n/a", "n/b", "n/c"}


def test_a_list_broken_after_its_first_items_leaves_the_world_as_it_was() -> None:
    """The items decode as they are walked: the second one is broken, so the first was already seen
    when the walk fails. The world keeps the previous list, nothing is touched, and the Reflector
    lists again (its run loop catches the error)."""
    src, touched = _sources()
    replace = src.reflectors[0]._on_replace
    replace(ListBody(_body("a", "b")))
    before, calls = dict(src.world.services), len(touched)
    broken = _body("c", "d").replace('{"metadata": {"name": "d"', '{"metadata": {"name": "d" oops', 1)
    with pytest.raises(ValueError):
        replace(ListBody(broken))
    assert src.world.services == before
    assert len(touched) == calls
