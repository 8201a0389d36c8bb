"""Resilient list+watch of one resource, on raw JSON: resume from resourceVersion, relist on 410 Gone,
bookmarks, and capped exponential backoff while the API server is away."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from kubevip.kube.rest import Query, RestClient

log = logging.getLogger(__name__)

RawObject = dict[str, Any]
# Errors that mean "the API server is away or slow": back off and resume (relist only on 410).
TRANSIENT: tuple[type[BaseException], ...] = (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError)


class Gone(Exception):
    """The resourceVersion we watch from is too old (HTTP 410): list again."""


class HttpError(Exception):
    """A non-200 answer other than 410."""

    def __init__(self, status: int, text: str) -> None:
        self.status = status
        super().__init__(f"HTTP {status}: {text[:300]}")


@dataclass
class Backoff:
    """Capped exponential delays; reset after a healthy watch."""

    first: float = 0.2
    cap: float = 5.0
    _next: float = 0.0

    def next(self) -> float:
        self._next = self.first if self._next == 0 else min(self.cap, self._next * 2)
        return self._next

    def reset(self) -> None:
        self._next = 0.0


class Reflector:
    """Keeps a consumer in step with the collection at `path` (e.g. /api/v1/services), filtered by `query`
    (labelSelector, fieldSelector). `on_replace(items)` after each (re)list gives the whole set (the
    consumer drops what vanished); `on_event(type, obj)` for ADDED/MODIFIED/DELETED afterwards."""

    def __init__(
        self,
        name: str,
        api: RestClient,
        path: str,
        on_replace: Callable[[list[RawObject]], None],
        on_event: Callable[[str, RawObject], None],
        *,
        on_restart: Callable[[str], None] | None = None,
        request_timeout: float = 10.0,
        watch_timeout: int = 290,
        idle_timeout: float = 330.0,
        backoff: Backoff | None = None,
        query: Query | None = None,
    ) -> None:
        self.name = name
        self._api = api
        self.path = path
        self.query = dict(query or {})
        self._on_replace = on_replace
        self._on_event = on_event
        self._on_restart = on_restart or (lambda cause: None)
        self.request_timeout = request_timeout
        self.watch_timeout = watch_timeout
        self.idle_timeout = idle_timeout
        self.backoff = backoff or Backoff()
        self.resource_version = ""
        self.synced = asyncio.Event()
        self.lists = 0
        self.watches = 0

    async def run(self) -> None:
        """List, then watch forever; start it with kubevip.tasks.spawn."""
        while True:
            try:
                if not self.resource_version:
                    await self._relist()
                await self._watch()
                self.backoff.reset()
            except Gone:
                log.info("watch %s: resourceVersion %s expired (410): listing again", self.name,
                         self.resource_version)
                self.resource_version = ""
                self._on_restart("gone")
            except RETRY as exc:
                delay = self.backoff.next()
                log.warning("watch %s: %s; retrying in %.1fs (from %s)", self.name, _short(exc), delay,
                            self.resource_version or "a fresh list")
                self._on_restart("error")
                await asyncio.sleep(delay)

    async def _relist(self) -> None:
        resp = await self._api.request(
            "GET", self.path, query=self.query, timeout=aiohttp.ClientTimeout(total=self.request_timeout),
        )
        try:
            status = int(resp.status)
            body = await resp.read()
        finally:
            resp.release()
        if status != 200:
            raise HttpError(status, body.decode(errors="replace"))
        data = json.loads(body)
        items = [dict(i) for i in data.get("items") or []]
        kind = str(data.get("kind", "")).removesuffix("List")
        for it in items:  # list items carry no kind; consumers like to see it
            it.setdefault("kind", kind)
        self.resource_version = str((data.get("metadata") or {}).get("resourceVersion", ""))
        self.lists += 1
        self._on_replace(items)
        self.synced.set()

    async def _watch(self) -> None:
        self.watches += 1
        query = {
            **self.query, "watch": True, "resourceVersion": self.resource_version,
            "allowWatchBookmarks": True, "timeoutSeconds": self.watch_timeout,
        }
        resp = await self._api.request(
            "GET", self.path, query=query, timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self.request_timeout, sock_read=self.idle_timeout
            ),
        )
        try:
            if resp.status != 200:
                body = await resp.read()
                if resp.status == 410:
                    raise Gone()
                raise HttpError(int(resp.status), body.decode(errors="replace"))
            async for line in resp.content:
                if line.strip():
                    self._handle(json.loads(line))
        finally:
            resp.release()

    def _handle(self, event: dict[str, Any]) -> None:
        kind = str(event.get("type", ""))
        obj = event.get("object") or {}
        if kind == "ERROR":
            if int(obj.get("code") or 0) == 410:
                raise Gone()
            raise HttpError(int(obj.get("code") or 0), str(obj.get("message", "")))
        rv = str((obj.get("metadata") or {}).get("resourceVersion", ""))
        if rv:
            self.resource_version = rv
        if kind == "BOOKMARK":
            return
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            self._on_event(kind, obj)


RETRY: tuple[type[BaseException], ...] = (*TRANSIENT, HttpError)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
