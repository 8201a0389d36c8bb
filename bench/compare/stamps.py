"""When the bench itself sees the workload's Service and EndpointSlice watch events (its own clock).

A create's time splits at these instants into what the API server and the controller-manager took (the
same work for either agent) and what the agent took from the EndpointSlice on; both agents wait for the
slice before they announce. One thread per collection, standard library only, so that what it measures
is the server's publishing, not a client's decoding.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.request
from typing import Any

from compare.kubeapi import Kube
from compare.timeline import Stamp

SLICE_LABEL = "kubernetes.io/service-name"


def stamp_of(t: float, kind: str, event: dict[str, Any]) -> Stamp | None:
    """One watch event line as a Stamp (None for bookmarks and errors)."""
    obj = event.get("object") or {}
    meta = obj.get("metadata") or {}
    if event.get("type") not in ("ADDED", "MODIFIED", "DELETED"):
        return None
    if kind == "Service":
        return Stamp(t, kind, str(event["type"]), str(meta.get("name", "")), "", 0)
    ready = sum(1 for e in obj.get("endpoints") or [] if (e.get("conditions") or {}).get("ready"))
    service = str((meta.get("labels") or {}).get(SLICE_LABEL, ""))
    return Stamp(t, kind, str(event["type"]), service, str(obj.get("addressType", "")), ready)


class EventStamps:
    """Watches Services and EndpointSlices of one namespace; `stamps()` is every event seen so far."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.paths = {
            "Service": f"/api/v1/namespaces/{namespace}/services",
            "EndpointSlice": f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
        }
        self._seen: list[Stamp] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Barrier(len(self.paths) + 1)
        self._threads = [
            threading.Thread(target=self._run, args=(k, p), daemon=True, name=f"stamps-{k}")
            for k, p in self.paths.items()
        ]

    def start(self, timeout: float = 30.0) -> EventStamps:
        for t in self._threads:
            t.start()
        # Both watches open before anything is timed; a watch that cannot open costs only its stages
        # (NaN), never the scenario.
        with contextlib.suppress(threading.BrokenBarrierError):
            self._ready.wait(timeout)
        return self

    def stop(self) -> None:
        self._stop.set()  # the daemon threads end with their watch (timeoutSeconds) or the process

    def stamps(self) -> list[Stamp]:
        with self._lock:
            return list(self._seen)

    def _run(self, kind: str, path: str) -> None:
        first = True
        while not self._stop.is_set():
            try:
                rv = self.kube.get(path)["metadata"]["resourceVersion"]
                req = urllib.request.Request(
                    f"{self.kube.server}{path}?watch=1&resourceVersion={rv}&timeoutSeconds=600"
                )
                if self.kube.token:
                    req.add_header("Authorization", f"Bearer {self.kube.token}")
                with self.kube._opener.open(req, timeout=660) as resp:
                    if first:
                        first = False
                        self._ready.wait()
                    for line in resp:
                        t = time.monotonic()
                        if self._stop.is_set():
                            return
                        s = stamp_of(t, kind, json.loads(line))
                        if s is not None:
                            with self._lock:
                                self._seen.append(s)
            except (OSError, ValueError, KeyError, threading.BrokenBarrierError):
                if self._stop.wait(0.5):
                    return
