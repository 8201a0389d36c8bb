"""Reflector logic against a scripted fake API: paged first list from the watch cache, resume from
resourceVersion, relist on 410 and after repeated failures, backoff with jitter, Retry-After, a watch
that ends at once, a failing consumer, long lines (the real API server, through a fault-injecting proxy,
is in tests/cluster/kube/test_faults.py)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.kube.watch import REPLACE_CHUNK, Backoff, LineTooLong, Reflector, lines
from kubevip.tasks import TaskGroupGuard, bounded, chunked, spawn


class Content:
    """Chunks of a body, as aiohttp's StreamReader.iter_any() hands them out."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def iter_any(self) -> AsyncIterator[bytes]:
        for c in self.chunks:
            yield c


class FakeResp:
    def __init__(self, status: int, body: Any = None, lines: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.status = status
        self._body = json.dumps(body or {}).encode()
        self.content = Content([json.dumps(x).encode() + b"\n" for x in lines or []])
        self.headers = headers or {}

    async def read(self) -> bytes:
        return self._body

    def release(self) -> None:
        pass


def svc(name: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": rv}}


def page(rv: str, items: list[dict[str, Any]], cont: str = "") -> FakeResp:
    return FakeResp(200, {"kind": "ServiceList", "metadata": {"resourceVersion": rv, "continue": cont},
                          "items": items})


class Script:
    """A client answering list/watch requests from a queue; records what each request asked for."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str]] = []
        self.queries: list[dict[str, Any]] = []
        self.done = asyncio.Event()

    async def request(self, method: str, path: str, *, query: dict[str, Any], **kw: Any) -> FakeResp:
        assert (method, path) == ("GET", "/api/v1/services")
        self.queries.append(dict(query))
        if query.get("watch"):
            assert query["allowWatchBookmarks"] is True
            self.calls.append(("watch", str(query["resourceVersion"])))
        elif query.get("continue"):
            self.calls.append(("page", str(query["continue"])))
        else:
            self.calls.append(("list", str(query.get("resourceVersion", ""))))
        if not self.answers:
            self.done.set()
            await asyncio.Event().wait()
        a = self.answers.pop(0)
        if isinstance(a, BaseException):
            raise a
        return a  # type: ignore[no-any-return]


class Run:
    def __init__(self, script: Script, **kw: Any) -> None:
        self.replaced: list[list[str]] = []
        self.events: list[tuple[str, str]] = []
        self.restarts: list[str] = []
        self.delays: list[float] = []
        self.fail_events = kw.pop("fail_events", 0)
        self.r = Reflector(
            "svc", script, "/api/v1/services",  # type: ignore[arg-type]
            lambda items: self.replaced.append([i["metadata"]["name"] for i in items]),
            self._event, on_restart=self.restarts.append,
            backoff=Backoff(first=0.5, cap=4.0, rng=random.Random(1)), **kw,
        )
        self.r.sleep = self._sleep

    def _event(self, t: str, o: dict[str, Any]) -> None:
        if self.fail_events:
            self.fail_events -= 1
            raise RuntimeError("consumer bug")
        self.events.append((t, o["metadata"]["name"]))

    async def _sleep(self, delay: float) -> None:
        self.delays.append(delay)


async def run_script(script: Script, **kw: Any) -> Run:
    run = Run(script, **kw)
    guard = TaskGroupGuard("t")
    spawn(guard, "r", run.r.run())
    try:
        await bounded(script.done.wait(), 5)
        assert not guard.crashed
    finally:
        await guard.close()
    return run


async def test_first_list_from_the_watch_cache_in_pages_then_resume_and_bookmarks() -> None:
    script = Script([
        page("10", [svc("a", "9")], cont="c1"),
        page("10", [svc("c", "8")]),
        FakeResp(200, lines=[
            {"type": "ADDED", "object": svc("b", "11")},
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}},
        ]),
        FakeResp(200, lines=[{"type": "DELETED", "object": svc("a", "16")}]),
    ])
    run = await run_script(script, page_size=1)
    assert run.replaced == [["a", "c"]]
    assert run.events == [("ADDED", "b"), ("DELETED", "a")]
    assert script.calls == [("list", "0"), ("page", "c1"), ("watch", "10"), ("watch", "15"), ("watch", "16")]
    assert script.queries[0]["limit"] == 1 and "resourceVersionMatch" not in script.queries[0]
    assert run.restarts == [] and run.delays == []


async def test_a_coroutine_replace_is_walked_in_chunks_and_finished_before_the_watch() -> None:
    """A replace coroutine (a big collection) walks the items with `chunked`: other tasks run between
    chunks, and the watch starts only after the replace returned, so no event overtakes the list."""
    walked: list[str] = []
    calls_when_done: list[int] = []
    items = [svc(f"s{i}", "9") for i in range(3 * REPLACE_CHUNK + 1)]
    script = Script([page("10", items), FakeResp(200, lines=[{"type": "ADDED", "object": svc("b", "11")}])])
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    during: list[int] = []

    async def replace(listed: Any) -> None:
        start = ticks
        async for obj in chunked(listed, REPLACE_CHUNK):
            walked.append(obj["metadata"]["name"])
        during.append(ticks - start)
        calls_when_done.append(len(script.calls))

    events: list[str] = []
    r = Reflector("svc", script, "/api/v1/services", replace,  # type: ignore[arg-type]
                  lambda t, o: events.append(o["metadata"]["name"]))
    guard = TaskGroupGuard("t")
    spawn(guard, "tick", ticker())
    spawn(guard, "r", r.run())
    try:
        await bounded(script.done.wait(), 5)
        assert not guard.crashed
    finally:
        await guard.close()
    assert walked == [i["metadata"]["name"] for i in items] and events == ["b"]
    assert calls_when_done == [1], "the watch was requested before the replace had finished"
    assert during == [3], "the loop ran other tasks once between each two chunks"


async def test_gone_relists_consistently_and_errors_back_off_and_resume() -> None:
    script = Script([
        page("5", [svc("a", "5")]),
        aiohttp.ClientConnectionError("API server away"),
        FakeResp(200, lines=[{"type": "ERROR", "object": {"code": 410, "message": "too old"}}]),
        page("50", [svc("b", "49")]),
        FakeResp(410),
        page("60", []),
    ])
    run = await run_script(script)
    assert run.replaced == [["a"], ["b"], []]
    assert run.restarts == ["error", "gone", "gone"]
    assert script.calls == [
        ("list", "0"), ("watch", "5"), ("watch", "5"), ("list", ""), ("watch", "50"), ("list", ""),
        ("watch", "60"),
    ]
    assert len(run.delays) == 3 and all(d > 0 for d in run.delays)


async def test_a_watch_that_ends_at_once_backs_off_and_relists_after_repeated_failures() -> None:
    # 200 and closed at once, every time: without a backoff this was ~9,000 requests/s.
    empty = [FakeResp(200) for _ in range(3)]
    script = Script([page("7", [svc("a", "7")]), *empty, page("8", [svc("a", "8")]), *empty])
    run = await run_script(script, relist_after=3)
    assert run.restarts == ["error"] * 6
    assert run.replaced == [["a"], ["a"]]
    # exponential (jittered into [d/2, d]) and capped
    for delay, nominal in zip(run.delays, [0.5, 1, 2, 4, 4, 4], strict=True):
        assert nominal / 2 <= delay <= nominal
    # after 3 failures in a row the list is taken again, not older than what we had
    assert script.calls[:6] == [("list", "0"), ("watch", "7"), ("watch", "7"), ("watch", "7"), ("list", "7"),
                                ("watch", "8")]
    assert script.queries[4]["resourceVersionMatch"] == "NotOlderThan"


async def test_retry_after_of_a_429_is_waited_out() -> None:
    script = Script([page("3", []), FakeResp(429, {"kind": "Status", "message": "slow down"},
                                             headers={"Retry-After": "7"})])
    run = await run_script(script)
    assert run.restarts == ["error"]
    assert run.delays[0] >= 7


async def test_a_failing_consumer_restarts_the_watch_and_sees_the_event_again() -> None:
    ev = [{"type": "ADDED", "object": svc("b", "11")}]
    script = Script([page("10", []), FakeResp(200, lines=ev), FakeResp(200, lines=ev)])
    run = await run_script(script, fail_events=1)
    assert run.events == [("ADDED", "b")]
    assert script.calls == [("list", "0"), ("watch", "10"), ("watch", "10"), ("watch", "11")]


async def test_lines_longer_than_aiohttp_readline_are_read_whole() -> None:
    big = json.dumps({"x": "y" * (3 << 20)}).encode()  # 3 MiB, handed over in 64 KiB chunks
    body = b"\n" + big + b"\n{}\n"
    chunks = [body[i:i + 65536] for i in range(0, len(body), 65536)]
    got = [line async for line in lines(Content(chunks))]
    assert got == [big, b"{}"]


async def test_a_line_above_the_limit_fails_the_watch() -> None:
    with pytest.raises(LineTooLong):
        _ = [line async for line in lines(Content([b"x" * 100, b"y" * 100]), limit=150)]


@given(st.floats(0.01, 5), st.floats(1, 60), st.integers(1, 30), st.integers(0, 2**32))
def test_backoff_delays_are_jittered_below_an_exponential_cap(first: float, cap: float, n: int,
                                                              seed: int) -> None:
    b = Backoff(first=first, cap=cap, rng=random.Random(seed))
    nominal = first
    for i in range(n):
        if i:
            nominal = min(cap, nominal * 2)
        d = b.next()
        assert nominal / 2 <= d <= nominal
    b.reset()
    assert first / 2 <= b.next() <= first


def test_fan_out_feeds_every_consumer_in_order() -> None:
    from kubevip.kube.watch import fan_out

    seen: list[tuple[str, object]] = []
    a = (lambda items: seen.append(("a-replace", len(items))), lambda t, o: seen.append(("a", t)))
    b = (lambda items: seen.append(("b-replace", len(items))), lambda t, o: seen.append(("b", t)))
    replace, event = fan_out(a, b)
    replace([{}, {}])
    event("ADDED", {})
    assert seen == [("a-replace", 2), ("b-replace", 2), ("a", "ADDED"), ("b", "ADDED")]
