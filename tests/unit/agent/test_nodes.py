"""The agent's Node source: only what placement reads wakes the agent (kubelet heartbeats do not)."""

from __future__ import annotations

from typing import Any

from kubevip.agent.nodes import NodeSource
from kubevip.core.nodes import ANNOTATION_NETWORK
from kubevip.kube.rest import Access, RestClient


def _node(name: str, *, heartbeat: str = "t0", labels: dict[str, str] | None = None,
          unschedulable: bool = False, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {},
                     "resourceVersion": heartbeat},
        "spec": {"unschedulable": unschedulable},
        "status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": heartbeat}]},
    }


def _source() -> tuple[NodeSource, list[int], list[tuple[str, str, str]]]:
    calls: list[int] = []
    broken: list[tuple[str, str, str]] = []
    api = RestClient(Access(server="https://127.0.0.1:1"))
    src = NodeSource(api, lambda: calls.append(1), lambda *a: broken.append(a))
    return src, calls, broken


def test_only_placement_inputs_count() -> None:
    src, calls, broken = _source()
    src._replace([_node("a"), _node("b")])
    assert len(calls) == 1 and set(src.nodes) == {"a", "b"}
    src._event("MODIFIED", _node("a", heartbeat="t1"))  # a heartbeat: nothing placement reads
    assert len(calls) == 1
    src._event("MODIFIED", _node("a", labels={"rack": "r1"}))
    src._event("MODIFIED", _node("a", labels={"rack": "r1"}, unschedulable=True))
    src._event("MODIFIED", _node("a", labels={"rack": "r1"}, unschedulable=True,
                                 annotations={ANNOTATION_NETWORK: '{"links":["eth0"]}'}))
    assert len(calls) == 4 and src.nodes["a"].network is not None
    src._event("DELETED", _node("b"))
    assert len(calls) == 5 and set(src.nodes) == {"a"}
    src._replace([_node("a", labels={"rack": "r1"}, unschedulable=True,
                        annotations={ANNOTATION_NETWORK: '{"links":["eth0"]}'})])
    assert len(calls) == 5  # a relist that changes nothing
    src._event("ADDED", {"metadata": {"labels": "bad"}})
    assert len(calls) == 5 and broken and broken[0][0] == "Node"
