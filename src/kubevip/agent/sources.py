"""Watches that feed the World: Services and EndpointSlices (or legacy Endpoints), raw JSON -> views."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from kubevip.core.announced import ANNOTATION_VIP_HOST_IPV6
from kubevip.core.egress import ANN_ACTIVE_ENDPOINT, ANN_ACTIVE_ENDPOINT_IPV6
from kubevip.core.parse import endpoints_from_dict, endpointslice_from_dict, service_from_dict, shared
from kubevip.core.views import ServiceView
from kubevip.core.world import (
    ENDPOINT_SLICE,
    ENDPOINTS,
    SERVICE,
    World,
    apply_event,
    same_decision_inputs,
)
from kubevip.errors import InputError
from kubevip.kube.rest import RestClient
from kubevip.kube.watch import REPLACE_CHUNK, Reflector
from kubevip.kube.writers import ANNOTATION_VIP_HOST
from kubevip.metrics import Metrics
from kubevip.tasks import chunked

log = logging.getLogger(__name__)

Touched = Callable[[set[str]], None]
SLICE_SELECTOR = "kubernetes.io/service-name"


def _created(obj: dict[str, Any]) -> str:
    # Kept with every Service; Services created in the same second share one copy.
    return shared(str((obj.get("metadata") or {}).get("creationTimestamp") or ""))


# Annotations the agents write on Services.
WRITTEN_BACK = frozenset({
    ANNOTATION_VIP_HOST, ANNOTATION_VIP_HOST_IPV6, ANN_ACTIVE_ENDPOINT, ANN_ACTIVE_ENDPOINT_IPV6,
})


class Sources:
    """Owns the reflectors; every change lands in `world` and reports the Service keys it touched."""

    def __init__(
        self, api: RestClient, world: World, namespace: str, use_legacy: bool, touched: Touched,
        metrics: Metrics, broken: Callable[[str, str, str], None],
        written_back: Touched | None = None,
    ) -> None:
        self.world = world
        self._touched = touched
        self._written_back = written_back or (lambda keys: None)
        self.metrics = metrics
        self._broken = broken
        scope = f"/namespaces/{namespace}" if namespace else ""  # all namespaces without one
        self.reflectors = [
            Reflector("services", api, f"/api/v1{scope}/services", self._replace(SERVICE),
                      self._event(SERVICE), on_restart=self._restart("services")),
        ]
        if use_legacy:
            self.reflectors.append(Reflector(
                "endpoints", api, f"/api/v1{scope}/endpoints", self._replace(ENDPOINTS),
                self._event(ENDPOINTS), on_restart=self._restart("endpoints"),
            ))
        else:
            self.reflectors.append(Reflector(
                "endpointslices", api, f"/apis/discovery.k8s.io/v1{scope}/endpointslices",
                self._replace(ENDPOINT_SLICE), self._event(ENDPOINT_SLICE),
                on_restart=self._restart("endpointslices"), query={"labelSelector": SLICE_SELECTOR},
            ))

    def _restart(self, name: str) -> Callable[[str], None]:
        return lambda cause: self.metrics.watch_restarts.labels(name, cause).inc()

    def _view(self, kind: str, obj: dict[str, Any]) -> object | None:
        try:
            if kind == SERVICE:
                return service_from_dict(obj)
            if kind == ENDPOINT_SLICE:
                return endpointslice_from_dict(obj)
            return endpoints_from_dict(obj)
        except InputError as exc:
            meta = obj.get("metadata") or {}
            key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
            log.warning("%s %s is malformed, ignored: %s", kind, key, exc)
            self._broken(kind, key, str(exc))
            return None

    def _event(self, kind: str) -> Callable[[str, dict[str, Any]], None]:
        def handle(type_: str, obj: dict[str, Any]) -> None:
            if kind == SERVICE:
                self.metrics.service_events.labels(type_).inc()
            view = self._view(kind, obj)
            if view is None:
                return
            old = (
                self.world.services.get(view.key)
                if isinstance(view, ServiceView) and type_ == "MODIFIED"
                else None
            )
            keys = apply_event(self.world, kind, type_ == "DELETED", view, _created(obj))
            if old is not None and isinstance(view, ServiceView) and same_decision_inputs(
                old.view, view, WRITTEN_BACK
            ):
                # Our own status / vipHost write coming back (or someone else's edit of them): no
                # decision changed, only what the Service says, which the report round checks.
                self._written_back(keys)
                return
            self._touched(keys)
        return handle

    def _replace(self, kind: str) -> Callable[[Iterable[dict[str, Any]]], Awaitable[None]]:
        async def replace(items: Iterable[dict[str, Any]]) -> None:
            # Every view first: the items decode as they are walked, and a broken list must leave the
            # world as it was (the Reflector lists again). In chunks, between yields to the loop: the
            # first list of 1000 Services or 2000 slices is 50-70 ms of decoding (kube/watch.py).
            views = [(view, _created(obj)) async for obj in chunked(items, REPLACE_CHUNK)
                     if (view := self._view(kind, obj)) is not None]
            w = self.world
            before: set[str]
            if kind == SERVICE:
                before = set(w.services)
                w.services.clear()
            elif kind == ENDPOINT_SLICE:
                before = set(w.slices)
                w.slices.clear()
                w.slice_owner.clear()
            else:
                before = set(w.legacy)
                w.legacy.clear()
            after: set[str] = set()
            for view, created in views:
                after |= apply_event(w, kind, False, view, created)
            self._touched(before | after)
        return replace

    @property
    def synced(self) -> bool:
        return all(r.synced.is_set() for r in self.reflectors)
