"""Reflector logic against a scripted fake API: resume from resourceVersion, relist on 410, bookmarks,
backoff on errors (no real server; the real one is in tests/cluster/test_agent_kube.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from kubevip.kube.watch import Backoff, Reflector
from kubevip.tasks import TaskGroupGuard, spawn


class FakeResp:
    def __init__(self, status: int, body: Any = None, lines: list[dict[str, Any]] | None = None) -> None:
        self.status = status
        self._body = json.dumps(body or {}).encode()
        self._lines = [json.dumps(x).encode() + b"\n" for x in lines or []]

    async def read(self) -> bytes:
        return self._body

    def release(self) -> None:
        pass

    @property
    def content(self) -> AsyncIterator[bytes]:
        async def gen() -> AsyncIterator[bytes]:
            for line in self._lines:
                yield line

        return gen()


def svc(name: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": rv}}


class Script:
    """A client answering list/watch requests from a queue; records the resourceVersion each watch asked
    for."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str]] = []
        self.done = asyncio.Event()

    async def request(self, method: str, path: str, *, query: dict[str, Any], **kw: Any) -> FakeResp:
        assert (method, path) == ("GET", "/api/v1/services")
        self.calls.append(("watch" if query.get("watch") else "list", str(query.get("resourceVersion", ""))))
        if query.get("watch"):
            assert query["allowWatchBookmarks"] is True
        if not self.answers:
            self.done.set()
            await asyncio.Event().wait()
        a = self.answers.pop(0)
        if isinstance(a, BaseException):
            raise a
        return a  # type: ignore[no-any-return]


async def run_script(script: Script) -> tuple[list[list[str]], list[tuple[str, str]], list[str]]:
    replaced: list[list[str]] = []
    events: list[tuple[str, str]] = []
    restarts: list[str] = []
    r = Reflector(
        "svc",
        script,  # type: ignore[arg-type]
        "/api/v1/services",
        lambda items: replaced.append([i["metadata"]["name"] for i in items]),
        lambda t, o: events.append((t, o["metadata"]["name"])),
        on_restart=restarts.append,
        backoff=Backoff(first=0.001, cap=0.002),
    )
    guard = TaskGroupGuard("t")
    spawn(guard, "r", r.run())
    try:
        await asyncio.wait_for(script.done.wait(), 5)
    finally:
        await guard.close()
    return replaced, events, restarts


async def test_resume_from_last_resource_version_and_bookmarks() -> None:
    script = Script(
        [
            FakeResp(
                200, {"kind": "ServiceList", "metadata": {"resourceVersion": "10"}, "items": [svc("a", "9")]}
            ),
            FakeResp(
                200,
                lines=[
                    {"type": "ADDED", "object": svc("b", "11")},
                    {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}},
                ],
            ),
            FakeResp(200, lines=[{"type": "DELETED", "object": svc("a", "16")}]),
        ]
    )
    replaced, events, restarts = await run_script(script)
    assert replaced == [["a"]]
    assert events == [("ADDED", "b"), ("DELETED", "a")]
    assert script.calls == [("list", ""), ("watch", "10"), ("watch", "15"), ("watch", "16")]
    assert restarts == []


async def test_gone_relists_and_errors_back_off_and_resume() -> None:
    script = Script(
        [
            FakeResp(200, {"metadata": {"resourceVersion": "5"}, "items": [svc("a", "5")]}),
            aiohttp.ClientConnectionError("API server away"),
            FakeResp(200, lines=[{"type": "ERROR", "object": {"code": 410, "message": "too old"}}]),
            FakeResp(200, {"metadata": {"resourceVersion": "50"}, "items": [svc("b", "49")]}),
            FakeResp(410),
            FakeResp(200, {"metadata": {"resourceVersion": "60"}, "items": []}),
        ]
    )
    replaced, _, restarts = await run_script(script)
    assert replaced == [["a"], ["b"], []]
    assert restarts == ["error", "gone", "gone"]
    assert script.calls == [
        ("list", ""),
        ("watch", "5"),
        ("watch", "5"),
        ("list", ""),
        ("watch", "50"),
        ("list", ""),
        ("watch", "60"),
    ]
