"""agent/sources.py: a list replaces the world's Services only once every item of it was decoded."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from kubevip.agent.sources import Sources
from kubevip.core.world import World
from kubevip.kube.listbody import ListBody
from kubevip.kube.watch import REPLACE_CHUNK
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


async def test_a_list_replaces_the_services() -> None:
    src, touched = _sources()
    replace = src.reflectors[0]._on_replace
    await replace(ListBody(_body("a", "b")))  # type: ignore[misc]
    assert sorted(src.world.services) == ["n/a", "n/b"]
    await replace(ListBody(_body("b", "c")))  # type: ignore[misc]
    assert sorted(src.world.services) == ["n/b", "n/c"]
    assert touched[-1] == {"n/a", "n/b", "n/c"}


async def test_a_list_broken_after_its_first_items_leaves_the_world_as_it_was() -> None:
    """The items decode as they are walked: the second one is broken, so the first was already seen
    when the walk fails. The world keeps the previous list, nothing is touched, and the Reflector
    lists again (its run loop catches the error)."""
    src, touched = _sources()
    replace = src.reflectors[0]._on_replace
    await replace(ListBody(_body("a", "b")))  # type: ignore[misc]
    before, calls = dict(src.world.services), len(touched)
    broken = _body("c", "d").replace('{"metadata": {"name": "d"', '{"metadata": {"name": "d" oops', 1)
    with pytest.raises(ValueError):
        await replace(ListBody(broken))  # type: ignore[misc]
    assert src.world.services == before
    assert len(touched) == calls


async def test_a_big_list_lets_the_event_loop_run_while_it_is_walked() -> None:
    """Issue 21: the first list of 1000 Services held the loop for 48-73 ms of CPU (120-190 ms on a busy
    machine), so Lease renewals waited. The walk yields every REPLACE_CHUNK items; the world changes
    only at its end, so what runs in between still sees the previous list."""
    src, _ = _sources()
    replace = src.reflectors[0]._on_replace
    names = [f"s{i}" for i in range(3 * REPLACE_CHUNK)]
    seen: list[int] = []

    async def renewal() -> None:  # a task that is due while the list is walked
        seen.append(len(src.world.services))

    task = asyncio.ensure_future(renewal())
    await replace(ListBody(_body(*names)))  # type: ignore[misc]
    assert task.done() and seen == [0], "the task ran during the walk and saw the world before it"
    assert len(src.world.services) == len(names)
