"""The one list/watch of kubevip, on raw JSON: every reflector (agent sources, the Lease cache, `kubevip
ipam`) and every single watch (an elector following one Lease) goes through here.

Policy (docs/architecture.md, "The Kubernetes boundary"):
- the first LIST is served from the watch cache (resourceVersion=0), in pages (limit/continue); its
  items are decoded one at a time as the consumer walks them (kube/listbody.py);
- a watch resumes from the last resourceVersion seen (bookmarks advance it);
- every failure of a list or a watch restarts it after a jittered exponential backoff; a 429 waits at
  least its Retry-After; after `relist_after` failures in a row, or a 410, the collection is listed again;
- a watch answered 200 that ends at once without delivering anything counts as a failure (no hot loop);
- a watch that is silent for `idle_timeout` (~a minute; a healthy watch gets a bookmark every minute) is
  abandoned and resumed; TCP keepalive (kube/rest.py) finds a dead peer sooner;
- event lines up to MAX_LINE (far above the API server's ~1.5 MiB object limit) are read;
- a consumer's replace may be a coroutine that walks the items with `kubevip.tasks.chunked`
  (`REPLACE_CHUNK` at a time): a list of thousands is then decoded between yields to the event loop,
  not in one block of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from kubevip.kube.errors import TRANSIENT, ApiError, Gone, api_error, read_body, retry_after
from kubevip.kube.listbody import ListBody, RawObject
from kubevip.kube.rest import Query, RestClient

log = logging.getLogger(__name__)

# One watch event is one line; etcd refuses requests above 1.5 MiB and the API server bodies above
# 3 MiB, so 16 MiB is never reached by a real object, yet bounds what a broken peer can make us buffer.
MAX_LINE = 16 * 1024 * 1024
# A watch silent this long ends and is resumed (watch_events): the API server sends a bookmark about every
# minute, but only on a collection whose resourceVersion has moved since the watch started.
IDLE_TIMEOUT = 70.0
WATCH_SECONDS = (240, 300)  # the server ends each watch cleanly after a random time in this range
LIST_TIMEOUT = 60.0  # one page of a list
PAGE_SIZE = 500
RELIST_AFTER = 5  # failures in a row before listing again
HEALTHY_SECONDS = 5.0  # a watch that lived this long (or delivered something) resets the backoff
# Items a consumer decodes between two yields to the event loop (`kubevip.tasks.chunked`): a few ms.
# Walked in one go, the Services (1000) or EndpointSlices (2000) of a restart's first list held the loop
# for 48-73 ms of CPU, 120-190 ms of wall time on two shared cores: the stalls of issue 21's restarts.
REPLACE_CHUNK = 64


class LineTooLong(ValueError):
    """A watch line above MAX_LINE: not an object the API server can have sent."""


class WatchEnded(Exception):
    """A watch answered 200 and ended without delivering anything (a proxy or a server going away)."""


@dataclass
class Backoff:
    """Capped exponential delays with jitter (each delay drawn from [d/2, d]), reset after health; so
    that many agents that lost the API server together do not come back in lockstep."""

    first: float = 0.5
    cap: float = 10.0
    rng: random.Random = field(default_factory=random.Random)
    _next: float = 0.0

    def next(self) -> float:
        self._next = self.first if self._next == 0 else min(self.cap, self._next * 2)
        return self.rng.uniform(self._next / 2, self._next)

    def reset(self) -> None:
        self._next = 0.0


async def lines(content: Any, limit: int = MAX_LINE) -> AsyncIterator[bytes]:
    """Non-empty lines of a response body, read in chunks (aiohttp's own readline stops at twice its
    read buffer: 512 KiB in aiohttp 3.14, 128 KiB in older ones)."""
    buf = bytearray()
    async for chunk in content.iter_any():
        buf += chunk
        while (end := buf.find(b"\n")) >= 0:
            line = bytes(buf[:end])
            del buf[: end + 1]
            if line.strip():
                yield line
        if len(buf) > limit:
            raise LineTooLong(f"a watch event longer than {limit} bytes")
    if buf.strip():
        yield bytes(buf)


async def watch_events(
    api: RestClient,
    path: str,
    what: str,
    resource_version: str,
    *,
    query: Query | None = None,
    idle_timeout: float = IDLE_TIMEOUT,
    connect_timeout: float = 10.0,
    timeout_seconds: int | None = None,
) -> AsyncIterator[tuple[str, RawObject]]:
    """One watch request: (type, object) after `resource_version`, BOOKMARK included; an error status
    or ERROR event raises its mapped ApiError (Gone when the version is too old)."""
    seconds = timeout_seconds or random.randint(*WATCH_SECONDS)
    resp = await api.request(
        "GET", path,
        query={**(query or {}), "watch": True, "resourceVersion": resource_version,
               "allowWatchBookmarks": True, "timeoutSeconds": seconds},
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=idle_timeout),
        stream=True,
    )
    try:
        if resp.status != 200:
            body = (await resp.read()).decode(errors="replace")
            raise api_error(int(resp.status), f"watch {what}", body,
                            retry_after(resp.headers.get("Retry-After")))
        try:
            async for line in lines(resp.content):
                event = json.loads(line)
                kind = str(event.get("type", ""))
                obj = event.get("object") or {}
                if kind == "ERROR":
                    raise api_error(int(obj.get("code") or 0), f"watch {what}", str(obj.get("message", "")))
                yield kind, obj
        except aiohttp.SocketTimeoutError:
            # Silent for idle_timeout after its 200: a half-open connection, or just a quiet collection.
            # The API server sends a bookmark only once the collection's resourceVersion has moved past
            # the one the watch started from (k8s.io/apiserver's cacher), so a collection nobody writes
            # (Nodes without kubelets, ServiceCIDRs) gets no bookmark at all. Either way the watch ends
            # here and is resumed from the same version: no failure, no warning.
            log.debug("watch %s: silent for %.0f s; resuming", what, idle_timeout)
    finally:
        resp.release()


class Listed:
    """The items of a list's pages, each decoded as it is walked (kube/listbody.py): walk them once."""

    __slots__ = ("_pages", "count")

    def __init__(self, pages: list[ListBody]) -> None:
        self._pages: list[ListBody] | None = pages
        self.count = 0  # items walked so far

    def __iter__(self) -> Iterator[RawObject]:
        pages, self._pages = self._pages, None
        if pages is None:
            raise RuntimeError("a list's items are decoded once; this one was walked already")
        while pages:
            for obj in pages.pop(0):  # a walked page's text goes with it
                self.count += 1
                yield obj


async def list_pages(
    api: RestClient,
    path: str,
    what: str,
    resource_version: str,
    *,
    query: Query | None = None,
    page_size: int = PAGE_SIZE,
    timeout: float = LIST_TIMEOUT,  # noqa: ASYNC109 (per page, passed to the request)
) -> tuple[Listed, str]:
    """Every item at `path` and the list's resourceVersion, in pages of `page_size`.

    `resource_version`: "0" = whatever the watch cache has (cheap, may lag a little), "" = a consistent
    read, a version = not older than it. Items get the list's `kind` (list items carry none). The items
    are decoded as they are walked, after every page has arrived (kube/listbody.py says why).
    """
    pages: list[ListBody] = []
    cont, rv = "", ""
    while True:
        q: dict[str, str | int | bool | None] = {**(query or {}), "limit": page_size}
        if cont:
            q["continue"] = cont
        elif resource_version:
            q["resourceVersion"] = resource_version
            if resource_version != "0":
                q["resourceVersionMatch"] = "NotOlderThan"
        body = await read_body(await api.request("GET", path, query=q, timeout=timeout), f"list {what}")
        try:
            page = ListBody(body)
        except ValueError as exc:
            raise ValueError(f"list {what}: {exc}") from None
        del body
        pages.append(page)
        meta = page.metadata
        rv = rv or str(meta.get("resourceVersion", ""))
        cont = str(meta.get("continue") or "")
        if not cont:
            break
    if not rv:  # a watch from "" would start "now" and miss what changed since this list
        raise ValueError(f"list {what}: the answer carries no resourceVersion")
    return Listed(pages), rv


# A consumer's replace: plain, or a coroutine function (awaited before the watch starts).
Replace = Callable[[Iterable[RawObject]], "Awaitable[None] | None"]
Consumer = tuple[Callable[[Iterable[RawObject]], None], Callable[[str, RawObject], None]]


def fan_out(*consumers: Consumer) -> Consumer:
    """One watch for several consumers of the same collection (one Node watch for placement and the
    address policy): each gets every replace and every event, in the order given."""

    def on_replace(items: Iterable[RawObject]) -> None:
        walked = list(items)  # each consumer walks them
        for replace, _ in consumers:
            replace(walked)

    def on_event(type_: str, obj: RawObject) -> None:
        for _, event in consumers:
            event(type_, obj)

    return on_replace, on_event


class Reflector:
    """Keeps a consumer in step with the collection at `path` (e.g. /api/v1/services), filtered by `query`
    (labelSelector, fieldSelector). `on_replace(items)` after each (re)list gives the whole set (the
    consumer drops what vanished); `on_event(type, obj)` for ADDED/MODIFIED/DELETED afterwards.

    The items of `on_replace` are decoded as the consumer walks them, once (kube/listbody.py). A broken
    document fails the walk midway, so a consumer builds what it keeps aside and swaps it in at the end.
    `on_replace` may be a coroutine function (a big collection walked with `tasks.chunked`); the watch starts
    once it has returned.

    `run()` never ends but by cancellation: any failure, including one raised by a callback, restarts
    the list/watch after a backoff.
    """

    def __init__(
        self,
        name: str,
        api: RestClient,
        path: str,
        on_replace: Replace,
        on_event: Callable[[str, RawObject], None],
        *,
        on_restart: Callable[[str], None] | None = None,
        request_timeout: float = LIST_TIMEOUT,
        watch_timeout: int | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
        backoff: Backoff | None = None,
        query: Query | None = None,
        page_size: int = PAGE_SIZE,
        relist_after: int = RELIST_AFTER,
        first_list: str = "0",
        resource_version: str = "",
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
        self.page_size = page_size
        self.relist_after = relist_after
        self.resource_version = resource_version  # given: watch from it, no first list
        # None: no list needed; "0": from the watch cache (cheap for N agents starting together, may lag
        # by a moment); "": consistent, for consumers that must never see the past (election, IPAM).
        self._list_from: str | None = None if resource_version else first_list
        self._first_list = first_list
        self.failures = 0
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # tests record the delays
        self.synced = asyncio.Event()
        self.lists = 0
        self.watches = 0

    async def run(self) -> None:
        """List, then watch forever; start it with kubevip.tasks.spawn."""
        while True:
            try:
                if self._list_from is not None:
                    await self._relist(self._list_from)
                if await self._watch():
                    self.failures = 0
                    self.backoff.reset()
                    continue
                raise WatchEnded(f"watch {self.name} ended at once, delivering nothing")
            except asyncio.CancelledError:
                raise
            except Gone as exc:
                log.info("watch %s: %s: listing again", self.name, _short(exc))
                self._list_from = ""  # our version is compacted away: a consistent read
                await self._pause("gone", exc)
            except Exception as exc:  # every failure restarts: the task never dies
                self.failures += 1
                if self.failures >= self.relist_after:
                    self.failures = 0
                    self._list_from = self.resource_version or self._first_list
                if not isinstance(exc, (*TRANSIENT, WatchEnded)):
                    log.exception("watch %s: unexpected failure, restarting", self.name)
                await self._pause("error", exc)

    async def _pause(self, cause: str, exc: BaseException) -> None:
        delay = self.backoff.next()
        if isinstance(exc, ApiError) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        log.warning("watch %s: %s; retrying in %.1fs (from %s)", self.name, _short(exc), delay,
                    self.resource_version if self._list_from is None else "a fresh list")
        self._on_restart(cause)
        await self.sleep(delay)

    async def _relist(self, resource_version: str) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        items, rv = await list_pages(
            self._api, self.path, self.name, resource_version, query=self.query,
            page_size=self.page_size, timeout=self.request_timeout,
        )
        self.lists += 1
        listed = loop.time()
        pending = self._on_replace(items)  # if the consumer fails, the list is taken again
        if pending is not None:
            await pending
        log.debug("watch %s: listed %d in %.3f s, taken in %.3f s", self.name, items.count, listed - started,
                  loop.time() - listed)
        self.resource_version = rv
        self._list_from = None
        self.synced.set()

    async def _watch(self) -> bool:
        """One watch; True when it was healthy: it delivered something, or lived HEALTHY_SECONDS (half
        its timeoutSeconds or its idle deadline if that is shorter: it ended on time)."""
        self.watches += 1
        loop = asyncio.get_running_loop()
        started, delivered = loop.time(), False
        seconds = self.watch_timeout or random.randint(*WATCH_SECONDS)
        events = watch_events(
            self._api, self.path, self.name, self.resource_version, query=self.query,
            idle_timeout=self.idle_timeout, timeout_seconds=seconds,
        )
        async for kind, obj in events:
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self._on_event(kind, obj)  # before advancing: a failed event is seen again
            rv = str((obj.get("metadata") or {}).get("resourceVersion", ""))
            if rv:
                self.resource_version = rv
            delivered = True
        # A watch that outlived its idle deadline ended there (watch_events): healthy too.
        return delivered or loop.time() - started >= min(HEALTHY_SECONDS, seconds / 2, self.idle_timeout)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
